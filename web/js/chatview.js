// One chat's transcript and message box, used by the customer, agent and buddy
// pages alike. Own messages sit on the right and the other side's on the left
// on every page, so people switching roles never have to relearn the layout.
// Messages are placed by their `seq`, never by arrival: the sender's `ack` (its
// message's id and seq, without the text) waits for the archive, so the other
// side's later message can arrive first.

import { el, clock, linkified, clientId as newClientId } from './dom.js';
import { FileTray, renderFiles } from './attachments.js';
import { cameByMail } from './agent-mails.js';

/** The mark of a line a category's bot wrote (`via: "bot"`), or null. */
function botMark(msg) {
  if (msg.via !== 'bot') return null;
  return el('span', { class: 'mail-state by-bot', title: 'An automatic answer by the bot', dataset: { testid: 'by-bot' } }, 'bot');
}

/** Trailing throttle for draft frames: the hub coalesces too, but this keeps us well under its rate limit. */
const DRAFT_EVERY_MS = 150;
/** Typing "stops" after this long without a keystroke. */
const TYPING_IDLE_MS = 2500;

/** Characters as the hub counts them (Unicode scalar values, not UTF-16 units). */
export const charCount = (text) => [...text].length;

export class ChatView {
  /**
   * @param {object} opts
   * @param {string} opts.label       accessible name of the message box
   * @param {number} opts.maxLen      longest message the hub accepts
   * @param {(text:string, clientId:string)=>boolean} opts.onSend  returns false if it could not be sent
   * @param {(text:string)=>void} [opts.onDraft]
   * @param {(active:boolean)=>void} [opts.onTyping]
   * @param {boolean} [opts.showDraft] reserve a draft-preview area (agent side)
   * @param {string} [opts.hint]       a standing note under the composer
   * @param {()=>string} [opts.peerName] names each message's author beside its time
   * @param {()=>string} [opts.spokenPeer] names the other side's lines to a screen reader
   *   only (the agent's console, whose lines carry no visible name), not "Them"
   * @param {import('./attachments.js').FileAccess} [opts.files] sending and showing files
   *   (`onSend` then gets the ids of the files that go with the text as a third argument)
   */
  constructor({ label, maxLen = 2000, onSend, onDraft, onTyping, showDraft = false, hint = '', peerName = null, spokenPeer = null, files = null }) {
    this.files = files;
    /** client_id → the files of our messages not yet acknowledged. */
    this.pendingFiles = new Map();
    /** When given, each message names its author beside its time ("You", or the peer's name). */
    this.peerName = peerName;
    this.spokenPeer = spokenPeer;
    this.maxLen = maxLen;
    this.onSend = onSend;
    this.onDraft = onDraft;
    this.onTyping = onTyping;
    /** Message ids shown, so a resume that delivers some again shows each once. */
    this.seen = new Set();
    /** seq → its <li>: a chat's seq names one message, and says where it goes. */
    this.bySeq = new Map();
    /** client_id → text of our messages not yet acknowledged: the hub's `ack` carries no text. */
    this.pendingTexts = new Map();
    this.typingActive = false;

    // A plain list: each incoming message is announced once, by the page's live region
    // (`announce`), so the list itself is not live (it would read every message twice).
    // Focusable (tabindex 0): a long chat scrolls inside it, and keyboard users scroll
    // back with the arrow keys, Page Up and Home only once it can take focus.
    this.transcript = el('ol', { class: 'transcript', 'aria-label': 'Messages', tabindex: '0', dataset: { testid: 'transcript' } });
    this.typing = el('div', { class: 'typing', 'aria-live': 'polite', dataset: { testid: 'typing-indicator' } });
    this.draft = el('div', { class: 'draft-preview', hidden: true, 'aria-live': 'off', dataset: { testid: 'draft-preview' } });
    const inputId = `msg-${Math.random().toString(36).slice(2, 9)}`;
    this.input = el('textarea', { id: inputId, rows: 2, autocomplete: 'off', dataset: { testid: 'message-input' }, 'aria-describedby': `${inputId}-count` });
    this.sendButton = el('button', { type: 'submit', dataset: { testid: 'send-button' } }, 'Send');
    this.counter = el('div', { id: `${inputId}-count`, class: 'counter', dataset: { testid: 'char-counter' } });
    this.error = el('div', { class: 'field-error', role: 'alert', dataset: { testid: 'composer-error' } });
    this.tray = files ? new FileTray(files, () => this.updateCounter()) : null;
    this.form = el('form', { class: 'composer-form' },
      el('label', { for: inputId, class: 'sr-only' }, label),
      this.tray?.tray,
      el('div', { class: 'composer' }, this.tray?.input, this.tray?.button, this.input, this.sendButton),
      this.counter, this.error);
    // A standing note under the composer, e.g. that the agent sees what is typed.
    this.hint = hint ? el('p', { class: 'muted composer-hint', dataset: { testid: 'composer-hint' } }, hint) : null;
    this.root = el('div', { class: 'chat' }, this.transcript, showDraft ? this.draft : null, this.typing, this.form, this.hint);

    // The newest line stays in view while the box changes size (the composer goes when a
    // chat ends and what follows shows below, a phone's keyboard opens, a hidden panel is
    // shown); someone who scrolled back to read is left where they are.
    this.atEnd = true;
    this.transcript.addEventListener('scroll', () => {
      const t = this.transcript;
      this.atEnd = t.scrollHeight - t.scrollTop - t.clientHeight < 24;
    });
    if (typeof ResizeObserver === 'function') new ResizeObserver(() => { if (this.atEnd) this.scroll(); }).observe(this.transcript);
    // Files dropped anywhere on the chat, or pasted into the message box (a screenshot).
    this.tray?.listen(this.root, this.input);

    this.form.addEventListener('submit', (e) => { e.preventDefault(); this.submit(); });
    // Enter sends; Shift+Enter makes a new line (the usual chat convention).
    this.input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); this.submit(); }
    });
    this.input.addEventListener('input', () => this.edited());
    this.updateCounter();
  }

  setMaxLen(n) {
    if (n) this.maxLen = n;
    this.updateCounter();
  }

  setEnabled(enabled) {
    this.input.disabled = !enabled;
    this.tray?.setEnabled(enabled);
    this.updateCounter();
    if (!enabled) this.stopTyping();
  }

  focus() { this.input.focus(); }

  /** Shows or hides the composer's hint: what it says may hold only at times (drafts are seen in a live chat only). */
  showHint(shown) { if (this.hint) this.hint.hidden = !shown; }

  /**
   * The chat is over and takes no more messages: the composer, its hint and an unsent
   * draft go (a disabled box with text in it reads as if it could still be sent).
   */
  end() {
    this.setEnabled(false);
    this.input.value = '';
    this.updateCounter();
    this.setTyping('');
    this.setDraft('');
    this.typing.hidden = true;
    this.form.hidden = true;
    if (this.hint) this.hint.hidden = true;
  }

  updateCounter() {
    const n = charCount(this.input.value);
    const over = n > this.maxLen;
    this.counter.textContent = over
      ? `${n} / ${this.maxLen} — too long, the limit is ${this.maxLen} characters`
      : `${n} / ${this.maxLen}`;
    this.counter.classList.toggle('over', over);
    this.input.setAttribute('aria-invalid', over ? 'true' : 'false');
    // A file needs no caption; an upload on its way holds the send back.
    const files = this.tray ? this.tray.ready().length : 0;
    this.sendButton.disabled = this.input.disabled || over || this.tray?.busy()
      || (this.input.value.trim() === '' && files === 0);
    return over;
  }

  edited() {
    if (!this.updateCounter()) this.error.textContent = '';
    const text = this.input.value;
    this.queueDraft(text);
    if (text.trim() === '') { this.stopTyping(); return; }
    if (!this.typingActive) { this.typingActive = true; this.onTyping?.(true); }
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => this.stopTyping(), TYPING_IDLE_MS);
  }

  queueDraft(text) {
    if (!this.onDraft) return;
    this.pendingDraft = text;
    if (this.draftTimer) return;
    this.onDraft(text);
    this.pendingDraft = undefined;
    this.draftTimer = setTimeout(() => {
      this.draftTimer = null;
      if (this.pendingDraft !== undefined) this.queueDraft(this.pendingDraft);
    }, DRAFT_EVERY_MS);
  }

  stopTyping() {
    clearTimeout(this.typingTimer);
    if (this.typingActive) { this.typingActive = false; this.onTyping?.(false); }
  }

  submit() {
    const text = this.input.value;
    const files = this.tray && !this.tray.busy() ? this.tray.ready() : [];
    if (this.input.disabled || this.tray?.busy() || (text.trim() === '' && files.length === 0)) return;
    if (this.updateCounter()) {
      // Refused here so the person keeps their text and sees why.
      this.error.textContent = `Message too long: ${charCount(text)} characters; the limit is ${this.maxLen}.`;
      return;
    }
    const id = newClientId();
    const ids = files.map((f) => f.id);
    if ((ids.length ? this.onSend(text, id, ids) : this.onSend(text, id)) === false) {
      this.error.textContent = 'Not connected — your message was not sent. Reconnecting…';
      return;
    }
    this.addPending(text, id, files);
    this.tray?.clearSent();
    this.input.value = '';
    this.error.textContent = '';
    this.stopTyping();
    this.queueDraft('');
    this.updateCounter();
  }

  addPending(text, id, files = []) {
    this.pendingTexts.set(id, text);
    if (files.length) this.pendingFiles.set(id, files);
    const item = el('li', { class: 'msg mine pending', dataset: { testid: 'message', clientId: id, mine: 'true' } },
      el('span', { class: 'sr-only' }, 'You: '), linkified(text), files.length ? renderFiles(files, this.files) : null,
      el('span', { class: 'meta' }, 'sending…'));
    this.transcript.append(item);
    this.scroll();
  }

  /**
   * The message an `ack` acknowledges, rebuilt from the text we sent (`fields` adds who
   * wrote it: `from`, and `sender` in buddy chats), or null when we no longer hold that
   * text (a reload since): the next resume or welcome snapshot then brings the message.
   */
  acked(ack, fields) {
    const text = ack.client_id === undefined ? undefined : this.pendingTexts.get(ack.client_id);
    if (text === undefined) return null;
    this.pendingTexts.delete(ack.client_id);
    const files = this.pendingFiles.get(ack.client_id);
    this.pendingFiles.delete(ack.client_id);
    return { type: 'message', chat_id: ack.chat_id, id: ack.id, seq: ack.seq, at: ack.at, client_id: ack.client_id, text, ...(files ? { attachments: files } : {}), ...fields };
  }

  /**
   * Adds a hub message once (resume may deliver some again) at its seq position; `mine`
   * places it on the right. `author` names someone else on that side (an agent who had
   * the chat before a transfer): shown beside the time and read instead of "You".
   */
  addMessage(msg, mine, { author: by } = {}) {
    if (this.seen.has(msg.id) || this.bySeq.has(msg.seq)) return false;
    this.seen.add(msg.id);
    const name = by || (this.peerName ? (mine ? 'You' : this.peerName()) : null);
    const author = name ? el('span', { class: 'author', dataset: { testid: 'message-author' } }, name) : null;
    const meta = el('span', { class: 'meta' }, author, author ? ' · ' : null,
      el('time', { datetime: new Date(msg.at).toISOString(), dataset: { testid: 'message-time' } }, clock(msg.at)));
    const pending = msg.client_id && mine
      ? this.transcript.querySelector(`li[data-client-id="${CSS.escape(msg.client_id)}"]:not([data-seq])`) : null;
    let item;
    if (pending) {
      // Our own message, acknowledged (after a reconnect it may have been marked failed meanwhile).
      item = pending;
      item.classList.remove('pending', 'failed');
      item.querySelector('.meta').replaceWith(meta);
    } else {
      item = el('li', { class: `msg ${mine ? 'mine' : 'theirs'}${by ? ' other-author' : ''}`, dataset: { testid: 'message', mine: String(mine && !by), author: by || undefined } },
        // Read first, so a screen reader names who wrote the line before its words.
        el('span', { class: 'sr-only' }, `${name || (mine ? 'You' : this.spokenPeer?.() || 'Them')}: `), linkified(msg.text),
        msg.attachments?.length ? renderFiles(msg.attachments, this.files) : null, meta, cameByMail(msg), botMark(msg));
    }
    item.dataset.id = msg.id;
    item.dataset.seq = String(msg.seq);
    this.bySeq.set(msg.seq, item);
    this.place(item, msg.seq);
    this.scroll();
    return true;
  }

  /**
   * Puts a message after every message with a smaller seq and before every one
   * with a larger seq. Notices and unacknowledged messages (no seq yet) keep
   * their places otherwise; a new message with nothing after it goes at the end.
   */
  place(item, seq) {
    let lastSmaller = null;
    let firstLarger = null;
    for (const other of this.transcript.querySelectorAll('li[data-seq]')) {
      if (other === item) continue;
      const s = Number(other.dataset.seq);
      if (s < seq) lastSmaller = other;
      else if (!firstLarger) firstLarger = other;
    }
    if (firstLarger) {
      if (!(item.isConnected && item.compareDocumentPosition(firstLarger) & Node.DOCUMENT_POSITION_FOLLOWING
        && !(lastSmaller && item.compareDocumentPosition(lastSmaller) & Node.DOCUMENT_POSITION_FOLLOWING))) {
        firstLarger.before(item);
      }
    } else if (!item.isConnected) {
      this.transcript.append(item);
    } else if (lastSmaller && item.compareDocumentPosition(lastSmaller) & Node.DOCUMENT_POSITION_FOLLOWING) {
      lastSmaller.after(item);
    }
  }

  /** The hub refused a message we showed as sending. */
  markFailed(id, message) {
    const item = this.transcript.querySelector(`li[data-client-id="${CSS.escape(id)}"]`);
    if (item) {
      item.classList.remove('pending');
      item.classList.add('failed');
      item.querySelector('.meta').textContent = `not sent: ${message}`;
    }
    this.error.textContent = message;
  }

  /**
   * Messages shown as sending that never got an acknowledgement (e.g. the connection dropped).
   * Some may have reached the hub: the resume's copy then marks them sent after all.
   */
  failPending(message) {
    for (const item of this.transcript.querySelectorAll('li.pending')) {
      item.classList.replace('pending', 'failed');
      item.querySelector('.meta').textContent = message;
    }
  }

  addNotice(text, testid = 'notice') {
    this.transcript.append(el('li', { class: 'notice', dataset: { testid } }, text));
    this.scroll();
  }

  setTyping(text) { this.typing.textContent = text || ''; }

  setDraft(text) {
    this.draft.textContent = text;
    this.draft.hidden = !text;
  }

  scroll() {
    this.transcript.scrollTop = this.transcript.scrollHeight;
    this.atEnd = true;
  }
}
