// The agent's conversations as a work list (GET /api/inbox): every conversation in their
// list until it is resolved — live ones, ones whose customer left, ones parked — by
// status (Open, Waiting on customer, Snoozed, Resolved), the longest waiting first. Each
// row says who, the last line and since when, with the actions its status allows:
// "Waiting on customer", "Snooze" (1 hour, or tomorrow 9:00), "Resolve", "Reopen". The
// changes go over the agent's socket (`set_conversation_status`); each answer, and every
// change made elsewhere (a snooze running out, a chat ending), refreshes the list.

import { el, api, dateTime, show, announce } from './dom.js';

const $ = (id) => document.getElementById(id);
const REFRESH_MS = 10000;
const HOUR = 3600 * 1000;

const STATUS_NAMES = { open: 'Open', pending: 'Waiting on customer', snoozed: 'Snoozed', resolved: 'Resolved' };

/** 9:00 tomorrow, on this computer's clock. */
function tomorrowMorning() {
  const t = new Date();
  t.setDate(t.getDate() + 1);
  t.setHours(9, 0, 0, 0);
  return t.getTime();
}

export function createConversations({ send }) {
  const list = $('conversation-list');
  const filter = $('conversation-filter');
  const error = $('conversation-error');
  let asked = 0;
  /** client id → customer name, for the answers' announcements. */
  const pending = new Map();

  const onScreen = () => !$('console').hidden;

  function setStatus(c, status, until) {
    const clientId = `cs-${++asked}`;
    pending.set(clientId, c.customer_name || 'the customer');
    error.textContent = '';
    send({ type: 'set_conversation_status', conversation_id: c.id, status, until, client_id: clientId });
  }

  function row(c) {
    const name = c.customer_name || 'Customer';
    const actions = el('div', { class: 'row conversation-actions' });
    const button = (label, testid, onclick, secondary = true) => el('button',
      { type: 'button', class: secondary ? 'secondary' : '', dataset: { testid }, 'aria-label': `${label}: ${name}`, onclick }, label);
    if (c.status !== 'pending' && c.status !== 'resolved') {
      actions.append(button('Waiting on customer', 'conversation-pending', () => setStatus(c, 'pending')));
    }
    if (c.status !== 'resolved') {
      const snooze = el('select', { 'aria-label': `Snooze ${name}`, dataset: { testid: 'conversation-snooze' } },
        el('option', { value: '' }, 'Snooze…'),
        el('option', { value: 'hour' }, 'for 1 hour'),
        el('option', { value: 'tomorrow' }, 'until tomorrow 9:00'));
      snooze.addEventListener('change', () => {
        const until = snooze.value === 'hour' ? Date.now() + HOUR : snooze.value === 'tomorrow' ? tomorrowMorning() : null;
        if (until) setStatus(c, 'snoozed', until);
      });
      actions.append(snooze, button('Resolve', 'conversation-resolve', () => setStatus(c, 'resolved'), false));
    }
    if (c.status !== 'open') actions.append(button('Reopen', 'conversation-reopen', () => setStatus(c, 'open')));
    const since = c.status === 'snoozed' && c.snoozed_until
      ? `until ${dateTime(c.snoozed_until)}` : `since ${dateTime(c.status_since)}`;
    const last = c.last_message
      ? `${c.last_message.from === 'agent' ? 'You' : name}: ${c.last_message.text}` : 'No messages yet';
    return el('li', { class: 'conversation-item', dataset: { testid: 'conversation-item', id: c.id, status: c.status, customer: name } },
      el('div', { class: 'row' },
        el('strong', { class: 'grow' }, name),
        el('span', { class: `pill conversation-status ${c.status}`, dataset: { testid: 'conversation-status' } }, STATUS_NAMES[c.status] || c.status)),
      el('p', { class: 'muted conversation-last', dataset: { testid: 'conversation-last' } }, last),
      el('p', { class: 'muted' }, since),
      actions);
  }

  async function load() {
    if (!onScreen()) return;
    const res = await api('GET', `/api/inbox?status=${encodeURIComponent(filter.value)}`);
    if (!res.ok) return;
    // Someone choosing a snooze keeps the list they are choosing in.
    if (list.contains(document.activeElement) && document.activeElement.tagName === 'SELECT') return;
    list.replaceChildren(...res.data.items.map(row));
    show($('conversation-empty'), res.data.items.length === 0);
  }

  filter.addEventListener('change', load);
  setInterval(() => { if (document.visibilityState === 'visible') load(); }, REFRESH_MS);
  new MutationObserver(() => load()).observe($('console'), { attributes: true, attributeFilter: ['hidden'] });

  /** Takes the frames this module answers; true when it did. */
  function handle(f) {
    if (f.type === 'conversation_status') {
      const name = f.client_id && pending.get(f.client_id);
      if (name) {
        pending.delete(f.client_id);
        announce(`The conversation with ${name} is now ${(STATUS_NAMES[f.status] || f.status).toLowerCase()}`);
      }
      load();
      return true;
    }
    if (f.type === 'error' && f.client_id && pending.has(f.client_id)) {
      pending.delete(f.client_id);
      error.textContent = f.message;
      load();
      return true;
    }
    // A chat started or ended changes the list as well.
    if (f.type === 'chat_started' || f.type === 'chat_ended') setTimeout(load, 300);
    return false;
  }

  return { handle, load };
}
