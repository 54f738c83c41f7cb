// The agent console's "Transfer" dialog: hand one of your running chats to another agent
// or to a category's queue. Opening it asks the hub who and where (`transfer_targets`):
// every colleague online, whatever topics they hold; agents who cannot take the chat now
// and closed categories are listed but disabled, with the reason. Handing it to an agent,
// the chat keeps its topic unless the agent moves it into one of that colleague's (the
// "Topic after the transfer" choice, shown once an agent is chosen). Sending (`transfer`)
// waits for the hub: a refusal (an `error`) is shown in the dialog and the chat stays;
// success is the chat's `chat_ended` (reason `transferred`), after which the console ends
// the chat with "Transferred to …", the name this module remembers (the hub does not say
// where it went).

import { el, show } from './dom.js';
import { charCount } from './chatview.js';

/** Longest note the hub accepts (characters, after trimming). */
const NOTE_MAX = 1000;
/** How long to wait for the hub's answer before saying so. */
const ANSWER_TIMEOUT_MS = 10000;

/** What each refusal means, in plain words (the chat stays with the agent in every case). */
const REFUSALS = {
  agent_not_eligible: 'That agent cannot take this chat right now (away, at their limit, or no longer in the topic chosen). The list is updated — choose again.',
  invalid_transfer: 'Choose one agent or one topic.',
  note_too_long: `The note is too long: at most ${NOTE_MAX} characters.`,
  invalid_note: 'The note holds a character that cannot be sent (a control or text-direction character). Remove it and try again.',
  unknown_category: 'That topic no longer exists. The list is updated — choose again.',
  category_closed: 'That topic is closed now (outside its chat hours). The list is updated — choose again.',
  not_your_chat: 'This chat is no longer yours.',
  unknown_chat: 'This chat has ended.',
  archive_unavailable: 'The chat archive is busy, so nothing was changed. Try again in a moment.',
  rate_limited: 'Too many requests at once. Try again in a moment.',
  cluster_unavailable: 'The service is briefly unavailable. Try again shortly.',
};
/** Refusals after which the lists are asked for again (who can take it has changed). */
const REFRESH_ON = new Set(['agent_not_eligible', 'unknown_category', 'category_closed']);

/** Why an agent listed cannot take the chat now. */
function agentReason(a) {
  if (a.status === 'away') return 'away';
  if (a.status === 'busy') return 'finishing their chats';
  if (a.chats >= a.max_chats) return 'full';
  return 'cannot take a chat now';
}

/**
 * @param {object} opts
 * @param {(frame:object)=>boolean} opts.send  sends a frame on the agent's socket
 */
export function createTransfer({ send }) {
  const ids = { title: 'transfer-title', note: 'transfer-note', count: 'transfer-note-count', status: 'transfer-status' };
  const parts = {
    customer: el('span', { dataset: { testid: 'transfer-customer' } }),
    status: el('p', { class: 'muted transfer-status', id: ids.status, role: 'status', dataset: { testid: 'transfer-status' } }),
    agents: el('div', { class: 'transfer-options', dataset: { testid: 'transfer-agents' } }),
    topics: el('div', { class: 'transfer-options transfer-topics-list' }),
    categories: el('div', { class: 'transfer-options', dataset: { testid: 'transfer-categories' } }),
    refresh: el('button', { type: 'button', class: 'secondary small', dataset: { testid: 'transfer-refresh' } }, 'Refresh'),
    note: el('textarea', { id: ids.note, rows: 3, maxlength: NOTE_MAX, 'aria-describedby': ids.count, dataset: { testid: 'transfer-note' } }),
    count: el('div', { class: 'counter', id: ids.count, dataset: { testid: 'transfer-note-count' } }),
    error: el('p', { class: 'form-error', role: 'alert', dataset: { testid: 'transfer-error' } }),
    submit: el('button', { type: 'submit', dataset: { testid: 'transfer-submit' } }, 'Transfer'),
    cancel: el('button', { type: 'button', class: 'secondary', dataset: { testid: 'transfer-cancel' } }, 'Cancel'),
  };
  const agentsSet = el('fieldset', { class: 'transfer-group' }, el('legend', {}, 'To an agent'), parts.agents);
  // Shown once an agent is chosen: the topic the chat goes on in with them.
  const topicsSet = el('fieldset', { class: 'transfer-group transfer-topics', hidden: true, dataset: { testid: 'transfer-topics' } },
    el('legend', {}, 'Topic after the transfer'), parts.topics);
  const categoriesSet = el('fieldset', { class: 'transfer-group' }, el('legend', {}, 'To a topic’s queue'), parts.categories);
  const form = el('form', { class: 'transfer-form', novalidate: true },
    el('div', { class: 'transfer-head' },
      el('h2', { id: ids.title, class: 'grow', tabindex: '-1' }, 'Transfer the chat with ', parts.customer),
      parts.refresh),
    parts.status,
    agentsSet,
    topicsSet,
    categoriesSet,
    el('label', { for: ids.note }, 'Note for whoever takes it ', el('span', { class: 'muted' }, '(optional)')),
    parts.note,
    parts.count,
    parts.error,
    el('div', { class: 'dialog-actions' }, parts.submit, parts.cancel));
  const dialog = el('dialog', { class: 'transfer-dialog', 'aria-labelledby': ids.title, dataset: { testid: 'transfer-dialog' } }, form);
  document.body.append(dialog);

  /** The chat the dialog is for: {id, name, category, opener}. */
  let current = null;
  /** The transfer sent and not yet answered: {chatId, to}. */
  let pending = null;
  /** Chats handed on, and where: chat_id → the name of the agent or category. */
  const sentTo = new Map();
  /** From the last lists: category id → name, and agent id → the category ids they hold. */
  let categoryNames = new Map();
  let agentTopics = new Map();
  let loading = false;
  let timer = null;

  function updateCount() {
    const n = charCount(parts.note.value);
    parts.count.textContent = `${n} / ${NOTE_MAX}`;
    parts.count.classList.toggle('over', n > NOTE_MAX);
  }

  const chosen = () => form.querySelector('input[name="transfer-target"]:checked');
  /** The topic chosen for the chat with the agent chosen: a category id, or '' to keep its own. */
  const chosenTopic = () => form.querySelector('input[name="transfer-topic"]:checked')?.value || '';

  const topicName = (id) => categoryNames.get(id) || (id === current?.categoryId ? current.category : id);

  /** The topic choice for the agent chosen: keep the chat's topic, or move it into one of theirs. */
  function renderTopics() {
    const choice = chosen();
    const theirs = choice?.dataset.kind === 'agent' ? (agentTopics.get(choice.dataset.id) || []) : [];
    const others = theirs.filter((c) => c !== current?.categoryId);
    if (!choice || choice.dataset.kind !== 'agent' || !others.length) {
      topicsSet.hidden = true;
      parts.topics.replaceChildren();
      return;
    }
    const keep = chosenTopic();
    const holds = theirs.includes(current.categoryId);
    const radio = (value, name, details) => {
      const id = `transfer-topic-${value || 'keep'}`;
      const input = el('input', { type: 'radio', name: 'transfer-topic', id, value, dataset: { name } });
      input.checked = value === (others.includes(keep) ? keep : '');
      input.disabled = !!pending;
      input.addEventListener('change', () => { parts.error.textContent = ''; render(); });
      return el('label', { class: 'transfer-option', for: id, dataset: { testid: 'transfer-topic', id: value, name } },
        input,
        el('span', { class: 'transfer-option-body' },
          el('span', { class: 'transfer-option-name' }, name),
          el('span', { class: 'transfer-option-details' }, details)));
    };
    parts.topics.replaceChildren(
      radio('', current.category, holds ? 'Keep this chat’s topic' : `Keep this chat’s topic (${choice.dataset.name} does not hold it)`),
      ...others.map((c) => radio(c, topicName(c), `Move the chat into ${choice.dataset.name}’s topic`)));
    topicsSet.hidden = false;
  }

  function render() {
    const choice = chosen();
    const busy = !!pending;
    const topic = choice?.dataset.kind === 'agent' ? chosenTopic() : '';
    parts.submit.disabled = busy || !choice;
    parts.submit.textContent = busy ? 'Transferring…'
      : choice ? `Transfer to ${choice.dataset.name}${topic ? ` · ${topicName(topic)}` : ''}` : 'Transfer';
    parts.note.readOnly = busy;
    parts.refresh.disabled = busy || loading;
    for (const input of form.querySelectorAll('input[name="transfer-target"]')) input.disabled = busy || input.dataset.unavailable === 'true';
    for (const input of form.querySelectorAll('input[name="transfer-topic"]')) input.disabled = busy;
  }

  /** One choice: a radio with its name and what is known of it. */
  function option({ kind, id, name, details, reason, hint }) {
    const inputId = `transfer-${kind}-${id}`;
    const reasonId = reason ? `${inputId}-why` : undefined;
    const input = el('input', {
      type: 'radio', name: 'transfer-target', id: inputId, value: `${kind}:${id}`,
      'aria-describedby': reasonId,
      dataset: { kind, id, name, unavailable: String(!!reason) },
    });
    input.disabled = !!reason;
    input.addEventListener('change', () => { parts.error.textContent = ''; renderTopics(); render(); });
    return el('label', { class: `transfer-option${reason ? ' unavailable' : ''}`, for: inputId, dataset: { testid: `transfer-${kind}`, id, name } },
      input,
      el('span', { class: 'transfer-option-body' },
        el('span', { class: 'transfer-option-name' }, name),
        el('span', { class: 'transfer-option-details' }, ...details),
        reason ? el('span', { class: 'transfer-reason', id: reasonId, dataset: { testid: 'transfer-reason' } }, reason) : null,
        hint ? el('span', { class: 'transfer-hint', dataset: { testid: 'transfer-hint' } }, hint) : null));
  }

  function fill(f) {
    const keep = chosen()?.value;
    categoryNames = new Map(f.categories.map((c) => [c.id, c.name]));
    agentTopics = new Map(f.agents.map((a) => [a.id, a.categories || []]));
    const holds = (a) => (a.categories || []).includes(current.categoryId);
    // Who can take it first; among them, those who hold the chat's topic.
    const agents = [...f.agents].sort((a, b) => Number(b.can_take) - Number(a.can_take)
      || Number(holds(b)) - Number(holds(a)) || a.name.localeCompare(b.name));
    parts.agents.replaceChildren(...agents.map((a) => option({
      kind: 'agent', id: a.id, name: a.name,
      details: [
        el('span', { class: `pill ${a.status}` }, a.status),
        el('span', {}, `${a.chats} of ${a.max_chats} chat${a.max_chats === 1 ? '' : 's'}`),
        el('span', { class: 'transfer-agent-topics', dataset: { testid: 'transfer-agent-topics' } },
          (a.categories || []).map((c) => categoryNames.get(c) || c).join(', ') || 'no topics'),
      ],
      reason: a.can_take ? null : `Unavailable: ${agentReason(a)}`,
    })));
    if (!agents.length) parts.agents.append(el('p', { class: 'muted', dataset: { testid: 'transfer-no-agents' } }, 'No other agent is online.'));
    parts.categories.replaceChildren(...f.categories.map((c) => option({
      kind: 'category', id: c.id, name: c.name,
      details: [
        el('span', {}, `${c.waiting} waiting`),
        c.id === current.categoryId ? el('span', { class: 'pill' }, 'this chat’s topic') : null,
      ],
      reason: c.open === false ? 'Closed now' : null,
      hint: c.open !== false && !c.agents_online ? 'Nobody online — the customer will wait in line' : null,
    })));
    if (keep) {
      const again = form.querySelector(`input[name="transfer-target"][value="${CSS.escape(keep)}"]`);
      if (again && again.dataset.unavailable !== 'true') again.checked = true;
    }
    renderTopics();
    parts.status.textContent = '';
    show(parts.status, false);
  }

  function ask() {
    if (!current) return;
    loading = true;
    parts.status.textContent = 'Loading who can take it…';
    show(parts.status, true);
    render();
    if (!send({ type: 'transfer_targets', chat_id: current.id })) {
      loading = false;
      parts.status.textContent = 'Not connected — reconnecting… Try Refresh in a moment.';
      render();
    }
  }

  function stopWaiting() {
    clearTimeout(timer);
    timer = null;
  }

  function close() {
    if (dialog.open) dialog.close();
  }

  // Escape (the dialog's cancel), Cancel, or the chat going: focus goes back where it was.
  dialog.addEventListener('close', () => {
    // The close event is delivered as a task of its own: a dialog opened again before it
    // came (Escape, then Enter at once) is the new one's, whose state must stay.
    if (dialog.open) return;
    stopWaiting();
    const opener = current?.opener;
    const fallback = current?.fallback;
    if (!pending) current = null;
    loading = false;
    const target = opener && opener.isConnected && !opener.hidden && !opener.disabled ? opener : fallback?.();
    target?.focus();
  });
  parts.cancel.addEventListener('click', close);
  parts.refresh.addEventListener('click', () => { parts.error.textContent = ''; ask(); });
  parts.note.addEventListener('input', () => { updateCount(); parts.error.textContent = ''; });

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const choice = chosen();
    if (!current || pending) return;
    if (!choice) { parts.error.textContent = 'Choose an agent or a topic first.'; return; }
    const note = parts.note.value.trim();
    if (charCount(note) > NOTE_MAX) { parts.error.textContent = REFUSALS.note_too_long; parts.note.focus(); return; }
    const frame = { type: 'transfer', chat_id: current.id };
    if (choice.dataset.kind === 'agent') {
      frame.to_agent = choice.dataset.id;
      const topic = chosenTopic();
      if (topic) frame.category = topic;
    } else frame.to_category = choice.dataset.id;
    if (note) frame.note = note;
    if (!send(frame)) { parts.error.textContent = 'Not connected — the chat was not transferred. Reconnecting…'; return; }
    parts.error.textContent = '';
    // "Transferred to Ori (Technical support)" when the chat moved into another topic.
    const moved = frame.category ? ` (${topicName(frame.category)})` : '';
    pending = { chatId: current.id, name: current.name, to: `${choice.dataset.name}${moved}` };
    render();
    timer = setTimeout(() => {
      if (!pending) return;
      pending = null;
      parts.error.textContent = 'No answer from the service. Check your chat list; if the chat is still here, try again.';
      render();
    }, ANSWER_TIMEOUT_MS);
  });

  return {
    /** Whether the dialog is open (the console's single-key shortcuts stay quiet then). */
    get isOpen() { return dialog.open; },
    /**
     * Opens the dialog for a chat. `opener` gets focus back when it closes; `fallback`
     * gives another element when the opener is gone (the chat ended meanwhile).
     */
    open({ id, name, category, categoryId, opener, fallback }) {
      if (pending) return;
      current = { id, name, category, categoryId, opener, fallback };
      parts.customer.textContent = name;
      parts.agents.replaceChildren();
      parts.categories.replaceChildren();
      parts.topics.replaceChildren();
      topicsSet.hidden = true;
      parts.note.value = '';
      parts.error.textContent = '';
      updateCount();
      dialog.showModal();
      ask();
      // The dialog's title first; the first choice once the lists are in.
      form.querySelector('h2').focus();
    },
    /** The hub's answer to `transfer_targets`. */
    targets(f) {
      if (!current || f.chat_id !== current.id || !dialog.open) return;
      loading = false;
      const hadFocus = dialog.contains(document.activeElement) && document.activeElement !== parts.note;
      fill(f);
      render();
      if (hadFocus && !pending) (chosen() || form.querySelector('input[name="transfer-target"]:not(:disabled)') || parts.note).focus();
    },
    /**
     * An `error` without a client_id: the answer to the transfer (or the lists) when one
     * is awaited. Returns false when it was not this dialog's, true when the dialog shows
     * it, or the words to show elsewhere (the dialog was closed meanwhile).
     */
    refused(f) {
      if (pending) {
        stopWaiting();
        const { name } = pending;
        pending = null;
        const text = `${REFUSALS[f.code] || f.message || 'The transfer was refused.'} The chat stays with you.`;
        if (!dialog.open) { current = null; return `The chat with ${name} was not transferred: ${text}`; }
        parts.error.textContent = text;
        render();
        if (REFRESH_ON.has(f.code)) ask();
        parts.error.scrollIntoView({ block: 'nearest' });
        return true;
      }
      if (loading && dialog.open) {
        loading = false;
        parts.status.textContent = REFUSALS[f.code] || f.message || 'Could not load the list.';
        render();
        return true;
      }
      return false;
    },
    /**
     * A chat of the agent's ended. Returns where it was transferred to (the name) when it
     * was transferred at this page's request, else null; the dialog closes if it was for it.
     */
    ended(chatId, reason) {
      let to = null;
      if (reason === 'transferred') {
        if (pending?.chatId === chatId) to = pending.to;
        else if (sentTo.has(chatId)) to = sentTo.get(chatId);
      }
      sentTo.delete(chatId);
      if (pending?.chatId === chatId) { stopWaiting(); pending = null; }
      if (current?.id === chatId) {
        // Closing puts focus back (the close event reads `current`, then forgets it).
        if (dialog.open) close(); else current = null;
      }
      render();
      return to;
    },
    /**
     * The connection dropped: an answer awaited may never come. Remembers where a chat
     * was being sent, so a welcome without it can still say "Transferred to …".
     */
    disconnected() {
      if (pending) {
        sentTo.set(pending.chatId, pending.to);
        stopWaiting();
        pending = null;
        if (dialog.open) parts.error.textContent = 'The connection dropped before the service answered. Once reconnected, check your chat list: if the chat is still here, it was not transferred.';
      }
      if (loading) { loading = false; parts.status.textContent = 'Not connected — reconnecting…'; }
      render();
    },
    /** Where a chat that vanished while disconnected had been sent, if anywhere. */
    sentWhileAway(chatId) {
      const to = sentTo.get(chatId) ?? null;
      sentTo.delete(chatId);
      return to;
    },
    close,
  };
}
