// The customer panel beside each chat in the agent console: who the customer is (name,
// email, the page they came from, their local time, how long they waited) and their
// earlier conversations, each openable in place to read its transcript and notes. A chat
// that continues a conversation (the customer came back to it: `chat_started.continued`)
// lists that conversation's own earlier turns first ("Earlier in this conversation", its
// lines before this chat), and its wait is this chat's (`chat_started.queued_at`), not the
// first turn's the archive keeps.
// Read from `GET /api/conversations/{id}/customer` (the chat's opening is archived as the
// chat starts; until it is, the panel retries a few times). Text only, never markup: a
// page address becomes a link only when it is http(s), and opens without a handle on the
// console (`noopener noreferrer`).

import { el, api, clock, dateTime } from './dom.js';
import { statusPill } from './conversation-status.js';

/** How often and how long to retry a panel whose conversation is not archived yet. */
const RETRY_MS = [500, 1000, 2000, 4000];

const duration = (secs) => {
  if (secs < 60) return `${Math.round(secs)} s`;
  const mins = Math.round(secs / 60);
  return mins < 60 ? `${mins} min` : `${Math.floor(mins / 60)} h ${mins % 60} min`;
};

/** Their local time now in `zone` ("14:05 (Europe/Berlin)"), or null. */
function localTime(zone) {
  if (!zone) return null;
  try {
    const time = new Intl.DateTimeFormat([], { hour: '2-digit', minute: '2-digit', timeZone: zone }).format(new Date());
    return `${time} (${zone.replaceAll('_', ' ')})`;
  } catch { return null; }
}

/** The page as a link when it is a web address; its host and path, shortened. */
function pageLink(page) {
  let url;
  try { url = new URL(page); } catch { return null; }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return null;
  const shown = `${url.host}${url.pathname === '/' ? '' : url.pathname}`;
  return el('a', { href: url.href, target: '_blank', rel: 'noopener noreferrer', title: url.href, dataset: { testid: 'customer-page' } },
    shown.length > 48 ? `${shown.slice(0, 47)}…` : shown);
}

function fact(term, value, testid) {
  if (value === null || value === undefined || value === '') return null;
  return [el('dt', {}, term), el('dd', { dataset: { testid } }, value)];
}

export function createCustomerPanel() {
  /** An earlier conversation's transcript, read when first opened (`before`: only what was said before then). */
  async function fillEarlier(chatId, summary, body, before = Infinity) {
    body.replaceChildren(el('p', { class: 'muted' }, 'Loading…'));
    const r = await api('GET', `/api/conversations/${encodeURIComponent(chatId)}/customer/conversations/${encodeURIComponent(summary.id)}`);
    if (!r.ok) {
      body.replaceChildren(el('p', { class: 'form-error', role: 'alert' }, r.error?.message || 'Could not load it.'));
      return false;
    }
    const c = r.data;
    c.messages = c.messages.filter((m) => m.at < before);
    c.notes = c.notes.filter((n) => n.at < before);
    const lines = [
      ...c.messages.map((m) => ({ at: m.at, node: el('li', { class: `earlier-line ${m.from}` },
        el('span', { class: 'earlier-meta' }, `${m.from === 'customer' ? c.customer_name : m.from === 'agent' ? m.agent_name || c.agent_name || 'Agent' : 'Switchboard'} · ${clock(m.at)}`),
        el('span', { class: 'earlier-text' }, m.text)) })),
      ...c.notes.map((n) => ({ at: n.at, node: el('li', { class: 'earlier-line note', dataset: { testid: 'earlier-note' } },
        el('span', { class: 'earlier-meta' }, `Internal note · ${n.agent_name} · ${clock(n.at)}`),
        el('span', { class: 'earlier-text' }, n.text)) })),
    ].sort((a, b) => a.at - b.at);
    body.replaceChildren(lines.length
      ? el('ol', { class: 'earlier-transcript plain-list', dataset: { testid: 'earlier-transcript' } }, lines.map((l) => l.node))
      : el('p', { class: 'muted' }, 'No messages.'));
    return true;
  }

  function earlierItem(chatId, summary) {
    const body = el('div', { class: 'earlier-body' });
    const rating = summary.rating ? ` · ${summary.rating.scale === 'thumbs' ? (summary.rating.score >= 2 ? '👍' : '👎') : `${'★'.repeat(summary.rating.score)}`}` : '';
    const details = el('details', { class: 'earlier', dataset: { testid: 'earlier-conversation', conversationId: summary.id } },
      el('summary', {},
        el('span', { class: 'earlier-when' }, dateTime(summary.paired_at)),
        ' ', statusPill(summary.status, 'earlier-status'),
        el('span', { class: 'muted' }, ` · ${summary.agent_name} · ${summary.message_count} message${summary.message_count === 1 ? '' : 's'}${rating}`)),
      body);
    let loaded = false;
    details.addEventListener('toggle', async () => {
      if (details.open && !loaded) loaded = await fillEarlier(chatId, summary, body);
    });
    return el('li', {}, details);
  }

  /** The conversation `chat` continues, as it was before this turn (the customer's joining the line again): its earlier turns. */
  function earlierTurns(chat, p) {
    const body = el('div', { class: 'earlier-body' });
    const details = el('details', { class: 'earlier', dataset: { testid: 'earlier-turns', conversationId: chat.id } },
      el('summary', {},
        el('span', { class: 'earlier-when' }, dateTime(p.paired_at)),
        ' ', chat.reopened ? statusPill('resolved', 'earlier-status') : null,
        el('span', { class: 'muted' }, chat.reopened ? ' · Earlier in this conversation, before it was reopened' : ' · Earlier in this conversation')),
      body);
    let loaded = false;
    details.addEventListener('toggle', async () => {
      if (details.open && !loaded) loaded = await fillEarlier(chat.id, { id: chat.id }, body, chat.queuedAt || chat.startedAt);
    });
    return el('li', {}, details);
  }

  function render(box, chat, p) {
    const chatId = chat.id;
    const recognised = p.recognised_by === 'email' ? 'by their email' : p.recognised_by === 'visitor' ? 'by this browser'
      : p.recognised_by === 'identity' ? "by the site's sign-in" : null;
    const items = [chat.continued ? earlierTurns(chat, p) : null, ...p.earlier.map((s) => earlierItem(chatId, s))].filter(Boolean);
    const earlier = items.length
      ? el('ul', { class: 'plain-list earlier-list', dataset: { testid: 'earlier-list' } }, items)
      : el('p', { class: 'muted', dataset: { testid: 'no-earlier' } }, recognised ? 'No earlier conversations.' : 'First visit, as far as we can tell.');
    // This chat's wait: a continued conversation's archive keeps its first turn's.
    const waited = chat.continued && chat.queuedAt ? Math.max(0, chat.startedAt - chat.queuedAt) / 1000 : p.waited_secs;
    box.replaceChildren(
      el('dl', { class: 'customer-facts' },
        fact('Name', p.customer_name, 'customer-name'),
        fact('Email', p.email ? el('a', { href: `mailto:${p.email}` }, p.email) : null, 'customer-email'),
        fact('Came from', p.page ? pageLink(p.page) : null, 'customer-came-from'),
        fact('Local time', localTime(p.zone), 'customer-local-time'),
        fact(chat.continued && chat.queuedAt ? 'Waited this time' : 'Waited', duration(waited), 'customer-waited')),
      el('h4', {}, 'Earlier conversations', recognised ? el('span', { class: 'muted' }, ` (found ${recognised})`) : null),
      earlier);
  }

  async function load(box, chat, attempt = 0) {
    const r = await api('GET', `/api/conversations/${encodeURIComponent(chat.id)}/customer`);
    if (r.ok) { render(box, chat, r.data); return; }
    // Not archived yet (the chat has only just started), or the network: retry a little.
    if ((r.status === 404 || r.status === 0 || r.status === 503) && attempt < RETRY_MS.length) {
      setTimeout(() => { if (box.isConnected) load(box, chat, attempt + 1); }, RETRY_MS[attempt]);
      return;
    }
    box.replaceChildren(el('p', { class: 'muted' }, 'The customer’s details are not available.'));
  }

  /** Adds the customer panel to a chat's panel and loads it. */
  function attach(chat) {
    const box = el('div', { class: 'customer-box', dataset: { testid: 'customer-details' } }, el('p', { class: 'muted' }, 'Loading…'));
    const aside = el('details', { class: 'customer-panel', open: window.matchMedia('(min-width: 70rem)').matches, dataset: { testid: 'customer-panel' } },
      el('summary', {}, el('h4', { class: 'inline' }, 'Customer')),
      box);
    chat.panel.classList.add('with-customer');
    chat.panel.append(aside);
    load(box, chat);
  }

  return { attach };
}
