// "Email me this transcript" on the customer page and the widget: a link-style button
// that unfolds a small form (the address, filled with the one given when joining), then
// says where the transcript goes. During the chat the ask goes on the websocket
// (`transcript`), and the mail is sent once the chat has ended; after the chat, with the
// chat's rating token, over HTTP (`POST /api/transcripts`). See docs/protocol.md.

import { el, api, announce, show } from './dom.js';

const MESSAGES = {
  invalid_email: 'Please enter a valid email address.',
  email_required: 'Please enter your email address.',
  too_many_transcripts: 'This transcript has been sent to three addresses already.',
  token_expired: 'This chat can no longer be emailed.',
};

/**
 * The transcript offer in `host`: `ask(email)` sends the ask and resolves to the answer
 * ({email, already} or {error: {code, message}}); `during` says whether the chat still runs
 * (the mail then waits for its end). Returns {setMode(ask, during), asked} to switch from
 * the socket to HTTP when the chat ends.
 */
export function transcriptOffer(host, { email = '', ask, during }) {
  let state = { ask, during, asked: null, already: false };
  const open = el('button', { type: 'button', class: 'link', dataset: { testid: 'transcript-open' }, 'aria-expanded': 'false' }, 'Email me this transcript');
  const input = el('input', { id: 'transcript-email', type: 'email', autocomplete: 'email', maxlength: '254', required: true, value: email, dataset: { testid: 'transcript-email' }, 'aria-describedby': 'transcript-error' });
  const error = el('p', { class: 'field-error', id: 'transcript-error', role: 'alert', dataset: { testid: 'transcript-error' } });
  const send = el('button', { type: 'submit', dataset: { testid: 'transcript-send' } }, 'Email it');
  input.addEventListener('input', () => { error.textContent = ''; });
  const form = el('form', { class: 'transcript-form', novalidate: true, hidden: true },
    el('label', { for: input.id }, 'Your email'),
    el('div', { class: 'row' }, input, send),
    error);
  const status = el('p', { class: 'transcript-status', role: 'status', dataset: { testid: 'transcript-status' }, hidden: true });
  open.addEventListener('click', () => {
    const unfold = form.hidden;
    show(form, unfold);
    open.setAttribute('aria-expanded', String(unfold));
    if (unfold) input.focus();
  });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const address = input.value.trim();
    if (!address || !input.checkValidity()) { error.textContent = MESSAGES[address ? 'invalid_email' : 'email_required']; input.focus(); return; }
    error.textContent = '';
    send.disabled = true;
    const answer = await state.ask(address);
    send.disabled = false;
    if (answer.error) {
      error.textContent = MESSAGES[answer.error.code] || answer.error.message || 'The transcript could not be asked for; please try again.';
      input.focus();
      return;
    }
    state.asked = answer.email;
    state.already = Boolean(answer.already);
    show(form, false);
    open.setAttribute('aria-expanded', 'false');
    open.textContent = 'Send it to another address';
    say();
  });
  function say() {
    if (!state.asked) return;
    // `already`: this address has its mail (waiting for the end, or sent with nothing
    // said since): say so rather than promise another.
    status.textContent = state.during
      ? `We'll email the transcript to ${state.asked} when the chat ends${state.already ? ' (you asked for it already)' : ''}.`
      : state.already
        ? `The transcript was emailed to ${state.asked} already; nothing has been said since.`
        : `The transcript is on its way to ${state.asked}.`;
    show(status, true);
    announce(status.textContent);
  }
  host.replaceChildren(el('div', { class: 'transcript-mail' }, status, open, form));
  return {
    /** The chat ended: later asks go over HTTP (`nextAsk`; none: no more asks, the status
     *  stays, or nothing shows); a status said during the chat is updated. */
    setMode(nextAsk, nextDuring) {
      // The chat ended: a mail asked during it (again or not) goes now.
      const already = state.already && !(state.during && !nextDuring);
      state = { ...state, ask: nextAsk, during: nextDuring, already };
      if (!nextAsk) {
        show(open, false);
        show(form, false);
        if (!state.asked) show(host, false);
      }
      say();
    },
    /** An address asked for before a reload. */
    setAsked(address) {
      state.asked = address;
      state.already = false;
      open.textContent = 'Send it to another address';
      say();
    },
    get asked() { return state.asked; },
  };
}

/** The HTTP ask after the chat, with its rating token. */
export function askByToken(token) {
  return async (email) => {
    const res = await api('POST', '/api/transcripts', { token, email });
    return res.ok ? res.data : { error: res.error };
  };
}
