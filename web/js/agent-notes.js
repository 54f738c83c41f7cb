// Internal notes in the agent console: what an agent writes on a chat for agents only.
// Each chat panel gets a small "Note" form under its message box; notes show in the
// transcript as yellow cards marked "Internal note", in time order with the messages'
// flow (appended as they come: a note has no seq). The hub never sends a note to the
// customer. A live chat's note goes over the agent's socket (`note`); a conversation
// whose customer is away or left has no live chat, so its note goes over HTTP
// (POST /api/conversations/{id}/notes) and shows from that answer.

import { el, clock, api } from './dom.js';

/** Longest note, as a message (the hub counts Unicode scalar values). */
const charCount = (text) => [...text].length;

export function createNotes({ send, maxLen }) {
  /** chat id → { chat, shown: Set of note ids, error element } */
  const byChat = new Map();

  function render(entry, note) {
    if (entry.shown.has(note.id)) return;
    entry.shown.add(note.id);
    const card = el('li', { class: 'note-card', dataset: { testid: 'note', noteId: note.id } },
      el('div', { role: 'note', 'aria-label': `Internal note by ${note.agent_name}` },
        el('div', { class: 'note-head' },
          el('strong', {}, 'Internal note'),
          el('span', { class: 'note-meta' }, ` · ${note.agent_name} · ${clock(note.at)}`)),
        el('div', { class: 'note-text' }, note.text)));
    entry.chat.view.transcript.append(card);
    entry.chat.view.scroll();
  }

  /** Adds the note form to a chat's panel. */
  function attach(chat) {
    const inputId = `note-${Math.random().toString(36).slice(2, 9)}`;
    const input = el('textarea', { id: inputId, rows: 1, dataset: { testid: 'note-input' }, placeholder: 'Only agents see notes' });
    const error = el('div', { class: 'field-error', role: 'alert', dataset: { testid: 'note-error' } });
    const button = el('button', { type: 'submit', class: 'secondary', dataset: { testid: 'note-button' } }, 'Add note');
    const form = el('form', { class: 'note-form', dataset: { testid: 'note-form' } },
      el('label', { for: inputId }, 'Internal note'),
      el('div', { class: 'composer' }, input, button),
      error);
    const entry = { chat, shown: new Set(), error, input, pending: new Map() };
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const text = input.value.trim();
      error.textContent = '';
      if (!text) return;
      if (charCount(text) > maxLen()) { error.textContent = `A note has at most ${maxLen()} characters.`; return; }
      // No live chat for the socket's `note` (its customer left, or opened from the list).
      if (chat.away || chat.customerGone) {
        input.value = '';
        api('POST', `/api/conversations/${encodeURIComponent(chat.id)}/notes`, { text }).then((res) => {
          if (res.ok) { render(entry, res.data); return; }
          input.value = input.value || text;
          error.textContent = res.error.message;
        });
        return;
      }
      const client_id = `n-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 7)}`;
      entry.pending.set(client_id, text);
      if (send({ type: 'note', chat_id: chat.id, text, client_id }) === false) {
        error.textContent = 'Not connected: the note was not sent.';
        entry.pending.delete(client_id);
        return;
      }
      input.value = '';
    });
    // Enter adds the note (Shift+Enter for a new line), as in the message box.
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); }
    });
    chat.view.root.append(form);
    byChat.set(chat.id, entry);
  }

  /** A frame for notes (`note`, `notes`, or an `error` naming a note's client id): true if handled. */
  function handle(f) {
    if (f.type === 'note') {
      const entry = byChat.get(f.chat_id);
      if (!entry) return true;
      if (f.client_id) entry.pending.delete(f.client_id);
      render(entry, f);
      return true;
    }
    if (f.type === 'notes') {
      const entry = byChat.get(f.chat_id);
      if (entry) for (const note of f.notes) render(entry, note);
      return true;
    }
    if (f.type === 'error' && f.client_id && f.client_id.startsWith('n-')) {
      for (const entry of byChat.values()) {
        const text = entry.pending.get(f.client_id);
        if (text === undefined) continue;
        entry.pending.delete(f.client_id);
        entry.input.value = entry.input.value || text;
        entry.error.textContent = f.message || 'The note was not kept.';
      }
      return true;
    }
    return false;
  }

  function forget(chatId) { byChat.delete(chatId); }

  return { attach, handle, forget };
}
