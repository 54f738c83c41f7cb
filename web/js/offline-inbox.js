// Offline messages for admins (GET /api/offline-messages), on the admin page's #offline
// view, all of them (agents work them as rows of the console's conversation list:
// agent-conversations.js). Each
// opens to its text and its replies, with "Take", "Reply by email" (a composer; the
// reply goes out through the hub's mail outbox) and "Mark handled". The count of new
// ones sits by the heading. Read when the list appears, on "Refresh" and every 5 s while
// it is on screen (no socket carries these).

import { el, api, dateTime, show, announce, clientId } from './dom.js';

const $ = (id) => document.getElementById(id);
const list = $('offline-messages');
const REFRESH_MS = 5000;

/** The reply being sent to each message (by its id): `{ text, clientId }`. Its
 * `client_id` is made once per reply and sent again with a retry of the same text (after
 * an error or a lost answer), so the hub archives and mails it once; it goes when the
 * reply is answered or its text changes. Kept here, as the list is redrawn on refresh. */
const replying = new Map();

/** Ids of the messages open now, kept across a refresh. */
const opened = new Set();

const onScreen = () => !$('console').hidden && !list.closest('[hidden]');

const STATE_NAMES = { new: 'New', taken: 'Taken', handled: 'Handled' };

function replyView(r) {
  return el('div', { class: 'offline-reply', dataset: { testid: 'offline-reply' } },
    el('p', { class: 'muted' }, `${r.agent_name} answered by email · ${dateTime(r.at)}`),
    el('p', { class: 'offline-reply-text' }, r.text));
}

function item(m) {
  const status = el('p', { class: 'form-error', role: 'alert', dataset: { testid: 'offline-item-error' } });
  const act = async (path, body) => {
    status.textContent = '';
    const res = await api('POST', `/api/offline-messages/${encodeURIComponent(m.id)}/${path}`, body ?? {});
    if (!res.ok) { status.textContent = res.error.message; return false; }
    await load(true);
    return true;
  };
  const buttons = el('div', { class: 'row' });
  if (m.state === 'new') {
    buttons.append(el('button', { type: 'button', dataset: { testid: 'offline-take' }, onclick: () => act('take') }, 'Take'));
  }
  const composerId = `offline-reply-${m.id}`;
  const textarea = el('textarea', { id: composerId, rows: '5', dataset: { testid: 'offline-reply-input' } });
  const composer = el('form', { class: 'offline-composer', novalidate: true, dataset: { testid: 'offline-composer' }, hidden: true },
    el('label', { for: composerId }, `Your answer to ${m.name} (by email to ${m.email})`), textarea,
    el('div', { class: 'row' },
      el('button', { type: 'submit', dataset: { testid: 'offline-reply-send' } }, 'Send reply'),
      el('button', { type: 'button', class: 'secondary', onclick: () => { composer.hidden = true; textarea.value = ''; } }, 'Cancel')));
  composer.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!textarea.value.trim()) { status.textContent = 'Write the answer first.'; textarea.focus(); return; }
    const send = composer.querySelector('[type="submit"]');
    send.disabled = true;
    const text = textarea.value;
    if (replying.get(m.id)?.text !== text.trim()) replying.set(m.id, { text: text.trim(), clientId: clientId() });
    const done = await act('reply', { text, client_id: replying.get(m.id).clientId });
    send.disabled = false;
    if (done) {
      replying.delete(m.id);
      announce(`Reply to ${m.name} sent by email`);
    }
  });
  buttons.append(el('button', { type: 'button', class: 'secondary', dataset: { testid: 'offline-reply-button' },
    onclick: () => { composer.hidden = false; textarea.focus(); } }, 'Reply by email'));
  if (m.state !== 'handled') {
    buttons.append(el('button', { type: 'button', class: 'secondary', dataset: { testid: 'offline-handled' }, onclick: () => act('handled') }, 'Mark handled'));
  }
  const who = m.taken_by_name ? ` · ${m.state === 'handled' ? 'handled' : 'taken'} by ${m.taken_by_name}` : '';
  const details = el('details', { class: 'offline-item', dataset: { testid: 'offline-item', id: m.id, state: m.state, name: m.name } },
    el('summary', {},
      el('strong', {}, m.name),
      el('span', { class: `offline-state ${m.state}`, dataset: { testid: 'offline-state' } }, STATE_NAMES[m.state] || m.state),
      el('span', { class: 'muted' }, `${m.category_name} · ${dateTime(m.created_at)}`)),
    el('p', { class: 'muted' }, `From ${m.name} <${m.email}>${who}`),
    el('p', { class: 'offline-text', dataset: { testid: 'offline-message-text' } }, m.text),
    ...m.replies.map(replyView),
    buttons, composer, status);
  details.open = opened.has(m.id);
  details.addEventListener('toggle', () => { if (details.open) opened.add(m.id); else opened.delete(m.id); });
  return details;
}

/** Whether someone is writing a reply now: a refresh would throw their text away. */
const composing = () => [...list.querySelectorAll('[data-testid="offline-reply-input"]')].some((t) => t.value.trim() || t === document.activeElement);

async function load(force = false) {
  if (!onScreen() || (!force && composing())) return;
  const filter = $('offline-filter')?.value || '';
  const res = await api('GET', `/api/offline-messages${filter ? `?state=${filter}` : ''}`);
  if (!res.ok) return;
  const count = $('offline-count');
  count.textContent = res.data.new_count ? `${res.data.new_count} new` : '';
  count.dataset.count = String(res.data.new_count);
  if (!force && composing()) return;
  list.replaceChildren(...res.data.items.map(item));
  show($('offline-empty'), res.data.items.length === 0);
}

$('offline-refresh')?.addEventListener('click', () => load(true));
$('offline-filter')?.addEventListener('change', () => load(true));
setInterval(() => { if (document.visibilityState === 'visible') load(); }, REFRESH_MS);
new MutationObserver(() => load()).observe($('console'), { attributes: true, attributeFilter: ['hidden'] });
document.addEventListener('admin-view', (e) => { if (e.detail === 'offline') load(true); });
load();
