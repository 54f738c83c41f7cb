// Canned replies in the agent console: the picker that typing "/" at the start of a
// chat's composer opens (a listbox filtered by shortcut and title as the agent types,
// only the replies for that chat's category; arrows move, Enter or Tab inserts, Escape
// closes), filling {customer}, {customer_first_name} and {agent}; the reply goes into the
// composer, never sent, so it can be edited first. The list opens upwards from the
// message box, over the transcript (the message box sits low on the screen: below it
// there is room for one line). Also the small "My replies" manager (the agent's own).

import { el, api, announce } from './dom.js';

/** The desk's replies that apply to the agent, then their own (GET /api/canned-replies). */
let replies = [];
let nextId = 0;

/** Loads (again) the agent's replies; resolves when they are there. */
export function loadCannedReplies() {
  return api('GET', '/api/canned-replies').then((res) => {
    if (res.ok) replies = res.data;
    document.dispatchEvent(new CustomEvent('canned-replies-changed'));
    return replies;
  });
}

/** A name's first word ("Dana" of "Dana Maria Scully"); the name itself when it has one word. */
export function firstName(name) {
  return (name || '').trim().split(/\s+/)[0] || '';
}

/** `text` with {customer}, {customer_first_name} and {agent} filled in. */
export function fill(text, { customer, agent }) {
  return text
    .replaceAll('{customer_first_name}', firstName(customer))
    .replaceAll('{customer}', customer || '')
    .replaceAll('{agent}', agent || '');
}

function applies(reply, category) {
  return reply.categories.length === 0 || reply.categories.includes(category);
}

/**
 * Gives `input` (a chat's composer) the "/" picker. `category` is the chat's category id;
 * `customer()` and `agent()` give the names to fill in. The picker is placed in `host`.
 */
export function attachPicker(input, host, { category, customer, agent }) {
  const id = `canned-${++nextId}`;
  const list = el('ul', { id: `${id}-list`, role: 'listbox', class: 'canned-picker', 'aria-label': 'Canned replies', dataset: { testid: 'canned-picker' }, hidden: true });
  const status = el('p', { class: 'sr-only', role: 'status', dataset: { testid: 'canned-status' } });
  // Anchored to the message box's row, opening upwards (see the stylesheet).
  const anchor = input.closest('.composer') || host;
  anchor.classList.add('canned-anchor');
  anchor.append(list);
  host.append(status);
  // A textarea cannot be a combobox (nor take aria-expanded): it names the list it
  // controls and the option in focus, and the status line says when the list opens.
  input.setAttribute('aria-controls', list.id);
  input.setAttribute('aria-autocomplete', 'list');
  let shown = [];
  let active = 0;
  let dismissed = false;

  const isOpen = () => !list.hidden;
  function close() {
    list.hidden = true;
    shown = [];
    input.removeAttribute('aria-activedescendant');
  }
  function render() {
    list.replaceChildren(...shown.map((r, i) => el('li', {
      id: `${id}-opt-${i}`, role: 'option', 'aria-selected': String(i === active),
      class: i === active ? 'active' : '', dataset: { testid: 'canned-option', shortcut: r.shortcut },
      onmousedown: (e) => { e.preventDefault(); insert(r); },
    }, el('span', { class: 'canned-shortcut' }, `/${r.shortcut}`), ' ', el('span', {}, r.title),
    r.scope === 'own' ? el('span', { class: 'muted' }, ' (mine)') : null)));
    if (shown.length) {
      input.setAttribute('aria-activedescendant', `${id}-opt-${active}`);
      list.children[active]?.scrollIntoView?.({ block: 'nearest' });
    } else {
      list.append(el('li', { role: 'option', 'aria-disabled': 'true', class: 'muted', dataset: { testid: 'canned-none' } }, 'No canned reply matches'));
      input.removeAttribute('aria-activedescendant');
    }
  }
  function update() {
    const value = input.value;
    if (!value.startsWith('/') || value.includes('\n')) { dismissed = false; if (isOpen()) close(); return; }
    // Escape closed it: it stays closed for this message (a text may start with "/").
    if (dismissed) return;
    const query = value.slice(1).toLowerCase();
    const before = shown.length;
    shown = replies.filter((r) => applies(r, category)
      && (r.shortcut.includes(query) || r.title.toLowerCase().includes(query)));
    // Shortcuts that start with what was typed first.
    shown.sort((a, b) => Number(!a.shortcut.startsWith(query)) - Number(!b.shortcut.startsWith(query)));
    active = Math.min(active, Math.max(shown.length - 1, 0));
    list.hidden = false;
    render();
    if (before !== shown.length || !status.textContent) {
      status.textContent = shown.length ? `${shown.length} canned ${shown.length === 1 ? 'reply' : 'replies'}; arrows to choose, Enter to insert` : 'No canned reply matches';
    }
  }
  function insert(reply) {
    close();
    input.value = fill(reply.text, { customer: customer(), agent: agent() });
    input.setSelectionRange(input.value.length, input.value.length);
    input.focus();
    // The composer's counter and typing signal follow, as if typed.
    input.dispatchEvent(new Event('input', { bubbles: true }));
    announce(`Inserted “${reply.title}”; edit it, then press Enter to send.`);
  }

  input.addEventListener('input', () => {
    // Opening the picker fetches the list again (an admin may have changed it); what was
    // loaded shows meanwhile.
    if (input.value === '/') loadCannedReplies().then(update);
    update();
  });
  input.addEventListener('blur', () => setTimeout(() => { if (document.activeElement !== input) close(); }, 100));
  // Captured on the composer's ancestor, so the keys the picker takes never send or leave.
  host.addEventListener('keydown', (e) => {
    if (e.target !== input || !isOpen() || e.isComposing) return;
    const take = () => { e.preventDefault(); e.stopPropagation(); };
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      take();
      if (!shown.length) return;
      active = (active + (e.key === 'ArrowDown' ? 1 : shown.length - 1)) % shown.length;
      render();
    } else if ((e.key === 'Enter' && !e.shiftKey) || (e.key === 'Tab' && !e.shiftKey)) {
      // Nothing matches: the text is a message that starts with "/"; Enter sends it.
      if (!shown.length) { close(); dismissed = true; return; }
      take();
      insert(shown[active]);
    } else if (e.key === 'Escape') {
      take();
      close();
      dismissed = true;
    }
  }, true);
  return { close };
}

/** The "My replies" manager: the agent's own replies, listed, added, edited, deleted. */
export function createMyReplies(root) {
  const list = el('ul', { class: 'plain-list', dataset: { testid: 'my-replies-list' } });
  const shortcut = el('input', { id: 'my-reply-shortcut', dataset: { testid: 'my-reply-shortcut' }, maxlength: '32', pattern: '[a-z0-9_\\-]{1,32}', autocomplete: 'off' });
  const title = el('input', { id: 'my-reply-title', dataset: { testid: 'my-reply-title' }, maxlength: '100' });
  const text = el('textarea', { id: 'my-reply-text', rows: 3, dataset: { testid: 'my-reply-text' }, 'aria-describedby': 'my-reply-hint' });
  const error = el('p', { class: 'form-error', role: 'alert', dataset: { testid: 'my-reply-error' } });
  const save = el('button', { type: 'submit', dataset: { testid: 'my-reply-save' } }, 'Add reply');
  const cancel = el('button', { type: 'button', class: 'secondary', hidden: true, dataset: { testid: 'my-reply-cancel' } }, 'Cancel');
  let editing = null;
  const form = el('form', { novalidate: true, dataset: { testid: 'my-reply-form' } },
    el('div', { class: 'row' },
      el('label', { for: shortcut.id }, 'Shortcut'), shortcut,
      el('label', { for: title.id }, 'Title'), title),
    el('label', { for: text.id }, 'Text'), text,
    el('p', { class: 'muted', id: 'my-reply-hint' }, 'Type / in a chat to use it. {customer}, {customer_first_name} and {agent} are filled in with the names.'),
    error, el('div', { class: 'row' }, save, cancel));
  root.append(list, form);

  function reset() {
    editing = null;
    form.reset();
    save.textContent = 'Add reply';
    cancel.hidden = true;
    error.textContent = '';
  }
  function render() {
    const own = replies.filter((r) => r.scope === 'own');
    list.replaceChildren(...(own.length ? own.map((r) => el('li', { class: 'row', dataset: { testid: 'my-reply', shortcut: r.shortcut } },
      el('span', { class: 'grow' }, el('strong', {}, `/${r.shortcut}`), ` ${r.title}`),
      el('button', { type: 'button', class: 'secondary', 'aria-label': `Edit /${r.shortcut}`, onclick: () => {
        editing = r; shortcut.value = r.shortcut; title.value = r.title; text.value = r.text;
        save.textContent = 'Save'; cancel.hidden = false; shortcut.focus();
      } }, 'Edit'),
      el('button', { type: 'button', class: 'danger', 'aria-label': `Delete /${r.shortcut}`, onclick: async () => {
        const res = await api('DELETE', `/api/canned-replies/${encodeURIComponent(r.id)}`);
        if (res.ok || res.status === 404) { announce(`Deleted /${r.shortcut}`); await loadCannedReplies(); }
      } }, 'Delete'))) : [el('li', { class: 'muted' }, 'None yet.')]));
  }
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = { shortcut: shortcut.value.trim(), title: title.value, text: text.value };
    const res = editing
      ? await api('PUT', `/api/canned-replies/${encodeURIComponent(editing.id)}`, body)
      : await api('POST', '/api/canned-replies', body);
    if (!res.ok) { error.textContent = res.error?.message || 'Could not save the reply.'; return; }
    announce(`Saved /${body.shortcut}`);
    reset();
    await loadCannedReplies();
  });
  cancel.addEventListener('click', reset);
  document.addEventListener('canned-replies-changed', render);
  render();
}
