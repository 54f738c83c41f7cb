// Lines that came by mail, and lines that went out by mail, in the agent console. A
// customer's answer by mail carries `via: "email"` (live and in the archive) and is marked
// "✉ by email" wherever a line is shown. Lines that went out: in a conversation whose customer is
// away, each line the hub mailed to them (`GET /api/conversations/{id}/mails`) is marked
// "✉ queued", "✉ sent", "✉ not sent" (only logged: no node sends mail), "✉ failed" or
// "⚠ bounced" (the relay refused it, or a delivery failure report came back: the reason on
// hover), and the marks are read again while a mail is queued, and now and then for a while
// after one was sent, as a report comes later. Text only: the state is one of five words
// from the hub.

import { el, api } from './dom.js';

/** How often the marks are read again while one of the conversation's mails is queued. */
const REFRESH_MS = 3000;
/** How often, and for how long after a mail was sent, they are read again for a bounce. */
const BOUNCE_REFRESH_MS = 30000;
const BOUNCE_WATCH_MS = 60 * 60 * 1000;
const WORDS = { queued: '✉ queued', sent: '✉ sent', logged: '✉ not sent', failed: '✉ failed', bounced: '⚠ bounced' };
const NOT_DELIVERED = {
  logged: 'Not sent (this desk sends no mail; it was only logged) to',
  failed: 'Not delivered to',
  bounced: 'Bounced: not delivered to',
};

/** The mark of a line that came by mail (`via: "email"`), or null for a chat line. */
export function cameByMail(msg) {
  if (msg.via !== 'email') return null;
  return el('span', { class: 'mail-state by-email', title: 'The customer wrote this by email', dataset: { testid: 'came-by-mail' } }, '✉ by email');
}

/** Marks the lines of `chat` (its `view` and `id`) that went out by mail; again while one is queued. */
export async function markMailedLines(chat) {
  clearTimeout(chat.mailTimer);
  const res = await api('GET', `/api/conversations/${encodeURIComponent(chat.id)}/mails`);
  if (!res.ok) return;
  let queued = false;
  let recentlySent = false;
  for (const mail of res.data.mails) {
    queued ||= mail.status === 'queued';
    recentlySent ||= mail.status === 'sent' && Date.now() - (mail.sent_at ?? 0) < BOUNCE_WATCH_MS;
    for (const seq of mail.seqs) {
      const line = chat.view.bySeq.get(seq);
      if (!line) continue;
      const word = WORDS[mail.status] || mail.status;
      const title = NOT_DELIVERED[mail.status]
        ? `${NOT_DELIVERED[mail.status]} ${mail.to}${mail.error ? `: ${mail.error}` : ''}`
        : `By mail to ${mail.to}`;
      let mark = line.querySelector('.mail-state');
      if (!mark) {
        mark = el('span', { class: `mail-state ${mail.status}`, dataset: { testid: 'mail-state' } });
        line.append(mark);
      }
      mark.className = `mail-state ${mail.status}`;
      mark.textContent = word;
      mark.title = title;
    }
  }
  // A line just written may start a mail a moment later: look again soon while away; and
  // now and then while a sent mail may still bounce.
  if (queued || chat.mailsPending || recentlySent) {
    const soon = queued || chat.mailsPending;
    chat.mailsPending = false;
    chat.mailTimer = setTimeout(() => { if (chat.away || chat.customerGone) markMailedLines(chat); },
      soon ? REFRESH_MS : BOUNCE_REFRESH_MS);
  }
}
