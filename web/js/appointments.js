// The representative's day: their appointments of a day (time, name, email, comment),
// earlier and later days, and cancelling one with a second press to confirm (a blocking
// confirm() dialog would freeze the page). The agent signs in on the console; this page
// uses that session's cookie.

import { el, api } from './dom.js';

const $ = (id) => document.getElementById(id);

function isoDay(d) {
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

function shift(days) {
  const [y, m, d] = $('day').value.split('-').map(Number);
  $('day').value = isoDay(new Date(y, m - 1, d + days));
  load();
}

function row(a) {
  const cancel = el('button', { type: 'button', class: 'danger', dataset: { testid: 'cancel-appointment' } }, 'Cancel');
  let armed = false;
  cancel.addEventListener('click', async () => {
    if (!armed) {
      armed = true;
      cancel.textContent = 'Press again to cancel';
      setTimeout(() => { armed = false; cancel.textContent = 'Cancel'; }, 5000);
      return;
    }
    cancel.disabled = true;
    const res = await api('POST', `/api/agent/appointments/${encodeURIComponent(a.id)}/cancel`, {});
    if (!res.ok) { $('error').textContent = res.error.message; cancel.disabled = false; return; }
    load();
  });
  // "Start" opens the appointment's room, from the start window on (the server checks too).
  const start = el('button', { type: 'button', dataset: { testid: 'start-appointment' } }, 'Start');
  start.disabled = !a.startable;
  start.addEventListener('click', async () => {
    start.disabled = true;
    const res = await api('POST', `/api/agent/appointments/${encodeURIComponent(a.id)}/start`, {});
    start.disabled = false;
    if (!res.ok) { $('error').textContent = res.error.message; return; }
    window.open(`${res.data.link}&as=agent`, '_blank');
  });
  const when = a.local_start.slice(11);
  // The waiting room: the customer opened their link and waits to be let in.
  const waiting = a.waiting_since && a.status !== 'cancelled'
    ? el('span', { class: 'pill away', dataset: { testid: 'customer-waiting' } },
      `${a.name} is waiting since ${new Date(a.waiting_since).toLocaleTimeString([], { timeStyle: 'short' })}`)
    : null;
  return el('li', { class: 'card', dataset: { testid: 'agent-appointment', status: a.status } },
    el('strong', {}, when), ' ', a.name, ' · ', el('a', { href: `mailto:${a.email}` }, a.email), waiting ? ' ' : null, waiting,
    a.comment ? el('p', { class: 'muted' }, a.comment) : null,
    a.customer_zone ? el('p', { class: 'muted' }, `The customer's time zone: ${a.customer_zone}`) : null,
    a.status === 'cancelled'
      ? el('p', { dataset: { testid: 'cancelled' } }, a.cancel_reason ? `Cancelled: ${a.cancel_reason}` : 'Cancelled')
      : el('p', {}, start, ' ', cancel));
}

async function load() {
  $('error').textContent = '';
  const res = await api('GET', `/api/agent/appointments?date=${encodeURIComponent($('day').value)}`);
  if (!res.ok) {
    $('error').textContent = res.status === 401
      ? 'Sign in on the agent console first.'
      : res.error.message;
    return;
  }
  $('zone').textContent = res.data.zone;
  $('list').replaceChildren(...res.data.appointments.map(row));
  $('empty').hidden = res.data.appointments.length > 0;
}

/** How often the list is read again, so "Start" turns on when an appointment's window
 * opens (the server checks the window anyway) and a customer waiting shows within seconds. */
const REFRESH_MS = 5000;

$('day').value = isoDay(new Date());
setInterval(() => {
  // Not while a cancel waits for its second press (the reload would disarm it).
  const armed = [...document.querySelectorAll('[data-testid="cancel-appointment"]')]
    .some((b) => b.textContent !== 'Cancel');
  if (!armed && !document.hidden) load();
}, REFRESH_MS);
$('day').addEventListener('change', load);
$('earlier').addEventListener('click', () => shift(-1));
$('later').addEventListener('click', () => shift(1));
load();
