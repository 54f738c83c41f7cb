// Lines that went out by mail, in the agent console: in a conversation whose customer is
// away, each line the hub mailed to them (`GET /api/conversations/{id}/mails`) is marked
// "✉ queued", "✉ sent" or "✉ failed", and the marks are read again while a mail is queued.
// Text only: the state is one of three words from the hub.

import { el, api } from './dom.js';

/** How often the marks are read again while one of the conversation's mails is queued. */
const REFRESH_MS = 3000;
const WORDS = { queued: '✉ queued', sent: '✉ sent', failed: '✉ failed' };

/** Marks the lines of `chat` (its `view` and `id`) that went out by mail; again while one is queued. */
export async function markMailedLines(chat) {
  clearTimeout(chat.mailTimer);
  const res = await api('GET', `/api/conversations/${encodeURIComponent(chat.id)}/mails`);
  if (!res.ok) return;
  let queued = false;
  for (const mail of res.data.mails) {
    queued ||= mail.status === 'queued';
    for (const seq of mail.seqs) {
      const line = chat.view.bySeq.get(seq);
      if (!line) continue;
      const word = WORDS[mail.status] || mail.status;
      const title = mail.status === 'failed' && mail.error ? `Not delivered to ${mail.to}: ${mail.error}` : `By mail to ${mail.to}`;
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
  // A line just written may start a mail a moment later: look again soon while away.
  if (queued || chat.mailsPending) {
    chat.mailsPending = false;
    chat.mailTimer = setTimeout(() => { if (chat.away || chat.customerGone) markMailedLines(chat); }, REFRESH_MS);
  }
}
