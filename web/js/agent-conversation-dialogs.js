// The work list's dialogs for a conversation outside its live chat (its customer left, it
// is parked, or it waits unassigned): "Add note" (an internal note, for agents only:
// POST /api/conversations/{id}/notes) and "Assign to…" (put it in another agent's list:
// the category's agents from GET /api/conversations/{id}/assignees, then
// POST /api/conversations/{id}/assign). Each is a modal <dialog> named by its heading,
// its refusal shown in it (role="alert"), focus back on the row's "More…" list when it
// closes (Escape or Cancel too). A note carries a client_id made when the dialog opens, so
// "Add note" pressed again after a 503 or a lost answer is the same note, not a second one
// (a changed text is a new note, with a new client_id). For an offline message (its
// conversation has the message's id), "Reply by email": the message and the address it
// goes to (from GET /api/offline-messages), the answer POSTed to
// /api/offline-messages/{id}/reply with a client_id kept the same way, so a retry is one
// reply and one mail. "Snooze until…": a date and time (a datetime-local field, bounded
// as the hub bounds a snooze: after now, at most a year on).

import { el, api, announce, clientId } from './dom.js';

let made = 0;
/** The hub's bound on a snooze (`Rules::max_snooze_ms`): a year. */
const MAX_SNOOZE_MS = 365 * 24 * 3600 * 1000;

/**
 * The element to give focus back to: `opener` itself, or, when the list was drawn anew
 * while the dialog closed (a reload finishing between close() and its "close" event), the
 * same control in its conversation's new row.
 */
function focusable(opener) {
  if (!opener || opener.isConnected) return opener;
  const id = opener.closest('[data-id]')?.dataset.id;
  const testid = opener.dataset.testid;
  if (!id || !testid) return null;
  return document.querySelector(`[data-id="${CSS.escape(id)}"] [data-testid="${CSS.escape(testid)}"]`);
}

/** One small dialog: a heading, the form's fields, an error line, Save and Cancel. */
function dialogShell(testid, submitLabel) {
  const n = ++made;
  const ids = { title: `cd-title-${n}`, field: `cd-field-${n}` };
  const parts = {
    title: el('h2', { id: ids.title, tabindex: '-1' }),
    body: el('div', { class: 'conversation-dialog-body' }),
    error: el('p', { class: 'form-error', role: 'alert', dataset: { testid: `${testid}-error` } }),
    submit: el('button', { type: 'submit', dataset: { testid: `${testid}-submit` } }, submitLabel),
    cancel: el('button', { type: 'button', class: 'secondary', dataset: { testid: `${testid}-cancel` } }, 'Cancel'),
  };
  const form = el('form', { class: 'transfer-form', novalidate: true },
    parts.title, parts.body, parts.error, el('div', { class: 'dialog-actions' }, parts.submit, parts.cancel));
  const dialog = el('dialog', { class: 'transfer-dialog conversation-dialog', 'aria-labelledby': ids.title, dataset: { testid } }, form);
  document.body.append(dialog);
  let opener = null;
  // Focus back on the opener at once (not only at the "close" event, a task later, before
  // which the page would show focus wherever the browser put it).
  const close = () => { dialog.close(); focusable(opener)?.focus(); };
  parts.cancel.addEventListener('click', close);
  dialog.addEventListener('close', () => {
    if (dialog.open) return;
    focusable(opener)?.focus();
  });
  return {
    ids, parts, form, dialog,
    close,
    /** Closes it with focus on `to` instead of its opener (whose row is going); on its opener when there is no `to`. */
    closeTo(to) { if (to) opener = to; close(); },
    open(from) {
      opener = from;
      parts.error.textContent = '';
      parts.submit.disabled = false;
      // The opener focused first: the browser gives focus back to it when the dialog closes
      // by Escape too (a list changed with the mouse need not have had focus).
      from?.focus();
      dialog.showModal();
    },
  };
}

/**
 * The client_id of a dialog's text: one per opening, kept while the same text is sent
 * again (a retry after a 503 or a lost answer), a new one for a changed text.
 */
function retryKey() {
  let named = { clientId: clientId(), text: null };
  return {
    reset() { named = { clientId: clientId(), text: null }; },
    for(text) {
      if (named.text !== null && named.text !== text) named = { clientId: clientId(), text: null };
      named.text = text;
      return named.clientId;
    },
  };
}

/**
 * Sends the text of `field` when `shell`'s form is submitted: `post(text, clientId)` (an
 * api() answer), then `done()`; an empty text, one `check` refuses, or the server's
 * refusal stays in the dialog with the reason.
 */
function onSubmitText(shell, field, key, { empty, check = () => null, post, done }) {
  shell.form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const t = field.value.trim();
    const refusal = t ? check(t) : empty;
    if (refusal) { shell.parts.error.textContent = refusal; field.focus(); return; }
    shell.parts.submit.disabled = true;
    const res = await post(t, key.for(t));
    shell.parts.submit.disabled = false;
    if (!res.ok) { shell.parts.error.textContent = res.error.message; return; }
    done();
  });
}

export function createConversationDialogs({ changed, maxLen }) {
  const note = dialogShell('conversation-note-dialog', 'Add note');
  const text = el('textarea', { id: note.ids.field, rows: 4, dataset: { testid: 'conversation-note-text' } });
  note.parts.body.append(el('label', { for: note.ids.field }, 'Internal note ', el('span', { class: 'muted' }, '(only agents see it)')), text);
  let noteFor = null;
  const noteKey = retryKey();
  onSubmitText(note, text, noteKey, {
    empty: 'Write the note first.',
    check: (t) => ([...t].length > maxLen() ? `A note has at most ${maxLen()} characters.` : null),
    post: (t, id) => api('POST', `/api/conversations/${encodeURIComponent(noteFor.id)}/notes`, { text: t, client_id: id }),
    done: () => {
      announce(`Note added to the conversation with ${noteFor.name}`);
      note.close();
      changed();
    },
  });

  const assign = dialogShell('conversation-assign-dialog', 'Assign');
  const select = el('select', { id: assign.ids.field, dataset: { testid: 'conversation-assign-agent' } });
  assign.parts.body.append(el('label', { for: assign.ids.field }, 'Agent'), select);
  let assignFor = null;
  assign.form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!select.value) { assign.parts.error.textContent = 'Choose an agent.'; select.focus(); return; }
    assign.parts.submit.disabled = true;
    const res = await api('POST', `/api/conversations/${encodeURIComponent(assignFor.id)}/assign`, { agent_id: select.value });
    assign.parts.submit.disabled = false;
    if (!res.ok) { assign.parts.error.textContent = res.error.message; return; }
    announce(`The conversation with ${assignFor.name} is now with ${res.data.holder_name}`);
    // Its row leaves the list: focus goes to the view shown ("Mine"), not into the list
    // (from a panel's header: where its opener says).
    assign.closeTo(assignFor.then?.() || document.querySelector('.conversation-views button[aria-pressed="true"]'));
    changed();
  });

  const reply = dialogShell('conversation-reply-dialog', 'Send reply');
  const replyText = el('textarea', { id: reply.ids.field, rows: 5, dataset: { testid: 'conversation-reply-text' } });
  const replyLabel = el('label', { for: reply.ids.field });
  const replyQuoted = el('blockquote', { class: 'conversation-reply-quote muted', dataset: { testid: 'conversation-reply-quote' } });
  reply.parts.body.append(replyQuoted, replyLabel, replyText);
  let replyFor = null;
  const replyKey = retryKey();
  onSubmitText(reply, replyText, replyKey, {
    empty: 'Write the answer first.',
    post: (t, id) => api('POST', `/api/offline-messages/${encodeURIComponent(replyFor.id)}/reply`, { text: t, client_id: id }),
    done: () => {
      announce(`Reply to ${replyFor.name} sent by email`);
      reply.close();
      changed();
    },
  });

  const snooze = dialogShell('conversation-snooze-dialog', 'Snooze');
  const when = el('input', { id: snooze.ids.field, type: 'datetime-local', required: true, dataset: { testid: 'conversation-snooze-until' } });
  snooze.parts.body.append(el('label', { for: snooze.ids.field }, 'Snooze until'), when,
    el('p', { class: 'muted' }, 'It comes back to your list as open at that time.'));
  let snoozeFor = null;
  snooze.form.addEventListener('submit', (e) => {
    e.preventDefault();
    // A datetime-local value is this computer's local time: Date reads it so.
    const until = when.value ? new Date(when.value).getTime() : NaN;
    const now = Date.now();
    if (!Number.isFinite(until)) { snooze.parts.error.textContent = 'Choose a date and time.'; when.focus(); return; }
    if (until <= now) { snooze.parts.error.textContent = 'Choose a time in the future.'; when.focus(); return; }
    if (until - now > MAX_SNOOZE_MS) { snooze.parts.error.textContent = 'A snooze lasts at most a year.'; when.focus(); return; }
    // Focus on the row's name (its link), not its "More…": a list whose select has focus is not
    // redrawn (someone may be choosing in it), and the snooze should show at once.
    const row = focusable(snoozeFor.from)?.closest('[data-id]');
    snooze.closeTo(row?.querySelector('[data-testid="conversation-open"]'));
    snoozeFor.pick(until);
  });

  return {
    /** "Reply by email" for the offline message of conversation `c`: its text and address shown. */
    async replyByMail(c, name, from) {
      // Opened again for the same message: its unsent answer and its client_id kept (a
      // retry after a lost answer is still one reply, one mail).
      if (replyFor?.id !== c.id) { replyText.value = ''; replyKey.reset(); }
      replyFor = { id: c.id, name };
      reply.parts.title.textContent = `Reply to ${name} by email`;
      replyLabel.textContent = 'Your answer';
      replyQuoted.textContent = '';
      reply.open(from);
      replyText.focus();
      const res = await api('GET', '/api/offline-messages');
      const m = res.ok ? res.data.items.find((i) => i.id === c.id) : null;
      if (!m) return;
      replyQuoted.textContent = m.text;
      replyLabel.textContent = `Your answer (by email to ${m.email})`;
    },
    /** "Snooze until…" for `c`: `pick(until)` sets it once a valid time is chosen. */
    snoozeUntil(c, name, from, pick) {
      snoozeFor = { id: c.id, pick, from };
      snooze.parts.title.textContent = `Snooze the conversation with ${name}`;
      const local = (ms) => { const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000); return d.toISOString().slice(0, 16); };
      const now = Date.now();
      when.min = local(now);
      when.max = local(now + MAX_SNOOZE_MS);
      when.value = local(now + 24 * 3600 * 1000);
      snooze.open(from);
      when.focus();
    },
    /** "Add note" for conversation `c` (named `name`); `from` gets focus back. */
    async addNote(c, name, from) {
      noteFor = { id: c.id, name };
      noteKey.reset();
      note.parts.title.textContent = `Note on the conversation with ${name}`;
      text.value = '';
      note.open(from);
      text.focus();
    },
    /**
     * "Assign to…" for conversation `c`: its category's agents, its holder marked; `then`
     * (optional) names where focus goes once it is assigned.
     */
    async assignTo(c, name, from, { then } = {}) {
      assignFor = { id: c.id, name, then };
      assign.parts.title.textContent = `Assign the conversation with ${name}`;
      select.replaceChildren(el('option', { value: '' }, 'Loading…'));
      assign.open(from);
      select.focus();
      const res = await api('GET', `/api/conversations/${encodeURIComponent(c.id)}/assignees`);
      if (!res.ok) { assign.parts.error.textContent = res.error.message; select.replaceChildren(); return; }
      const others = res.data.filter((a) => !a.holder);
      select.replaceChildren(el('option', { value: '' }, others.length ? 'Choose an agent' : 'No other agent serves this topic'),
        ...others.map((a) => el('option', { value: a.id }, a.name)));
    },
    get isOpen() { return [note, assign, reply, snooze].some((d) => d.dialog.open); },
  };
}
