// The appointment's page behind the mails' link (`manage.html?token=…`): what was booked
// (the time in the customer's zone, the desk's beside, name, email, comment), "Join the
// video call" on its own, and apart from it: add to a calendar, reschedule (the booking
// page in reschedule mode), and cancel, which first asks, with an optional reason.
// Before the representative starts the call, "Join" is a waiting room that lets the
// customer in by itself once the call starts.
// Opening the page changes nothing (mail scanners follow links): only the buttons do.

import { sentence } from './field-errors.js';

const $ = (id) => document.getElementById(id);
const token = new URLSearchParams(location.search).get('token') || '';

async function errorText(res) {
  try {
    return sentence((await res.json()).error.message);
  } catch {
    return `The server answered ${res.status}.`;
  }
}

const zoneLabel = (zone) => zone.replaceAll('_', ' ');

/** A formatter of times in the customer's zone (the browser's until the booking is read). */
const inTheirs = (options) => new Intl.DateTimeFormat([], { timeZone: shownZone || undefined, ...options });

function render(a) {
  shownZone = a.customer_zone;
  const time = (iso) => inTheirs({ hour: '2-digit', minute: '2-digit' }).format(new Date(iso));
  const day = inTheirs({ weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' }).format(new Date(a.start));
  $('summary').textContent = a.summary;
  $('when').textContent = `${day}, ${time(a.start)}–${time(a.end)} (${zoneLabel(a.customer_zone)})`;
  // The desk's date too when it is another day there.
  const deskWhen = a.local_start.slice(0, 10) === a.customer_local_start.slice(0, 10) ? a.local_start.slice(11) : a.local_start;
  $('desk').textContent = `${deskWhen} ${zoneLabel(a.zone)}`;
  $('length').textContent = `${a.minutes} min`;
  $('who').textContent = a.name;
  $('email').textContent = a.email;
  $('comment').textContent = a.comment || '—';
  const cancelled = a.status === 'cancelled';
  $('status-line').textContent = cancelled ? 'This appointment is cancelled.' : 'Booked';
  $('reason-line').hidden = !(cancelled && a.cancel_reason);
  $('reason-line').textContent = a.cancel_reason ? `Reason: ${a.cancel_reason}` : '';
  $('join-card').hidden = cancelled;
  $('change-card').hidden = cancelled;
  $('again-card').hidden = !cancelled;
  if (a.links) {
    $('add-google').href = a.links.calendar.google;
    $('add-outlook').href = a.links.calendar.outlook;
    $('add-ics').href = a.links.calendar.ics;
    $('reschedule').href = a.links.reschedule;
    $('book-again').href = a.links.book;
  }
  $('appointment').hidden = false;
}

async function load() {
  if (!token) {
    $('load-error').textContent = 'This link has no token; please use the whole link from your mail.';
    return;
  }
  const res = await fetch(`/api/appointments/booking?token=${encodeURIComponent(token)}`);
  if (!res.ok) {
    $('load-error').textContent = await errorText(res);
    return;
  }
  render(await res.json());
}

function askToCancel(open) {
  $('confirm-box').hidden = !open;
  $('ask-cancel').hidden = open;
  if (open) $('reason').focus();
}

$('ask-cancel').addEventListener('click', () => askToCancel(true));
$('keep').addEventListener('click', () => askToCancel(false));

$('confirm').addEventListener('click', async () => {
  $('confirm').disabled = true;
  try {
    const res = await fetch('/api/appointments/cancel', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token, reason: $('reason').value || undefined }),
    });
    if (!res.ok) {
      $('load-error').textContent = await errorText(res);
      return;
    }
    const outcome = await res.json();
    askToCancel(false);
    render(outcome.appointment);
    $('status-line').textContent = outcome.outcome === 'already_cancelled'
      ? 'This appointment was already cancelled.'
      : 'Your appointment is cancelled. A confirmation is on its way by mail.';
  } finally {
    $('confirm').disabled = false;
  }
});

// The waiting room: before the representative starts the call, "Join" waits here
// ("Your call with Anna starts at 10:00; you will be let in when Anna joins", the time in
// the customer's zone) and asks again, every 2 s growing to 5 s, until it is let in. Each
// ask also shows the customer as waiting on the representative's list.
const WAIT_FIRST_MS = 2000;
const WAIT_MAX_MS = 5000;
let waitTimer = null;
let shownZone = null;

async function askToJoin() {
  return fetch('/api/appointments/join', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token }),
  });
}

/** The appointment's room as the page waits for it (GET /api/appointments/room), or null
 *  (also when the network failed). */
async function roomStatus() {
  try {
    const res = await fetch(`/api/appointments/room?token=${encodeURIComponent(token)}`);
    return res.ok ? await res.json() : null;
  } catch {
    return null;
  }
}

/** `ms` in the customer's zone: the time, with the date before it when it is not today. */
function whenText(ms) {
  const day = (t) => inTheirs({ year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date(t));
  const time = inTheirs({ timeStyle: 'short' }).format(new Date(ms));
  if (day(ms) === day(Date.now())) return `at ${time}`;
  return `on ${inTheirs({ weekday: 'long', day: 'numeric', month: 'long' }).format(new Date(ms))} at ${time}`;
}

async function waitingText() {
  const room = await roomStatus();
  if (!room) return 'Your call has not started yet; you will be let in when your representative joins.';
  return `Your call with ${room.representative} starts ${whenText(room.start)}; you will be let in when ${room.representative} joins.`;
}

/** Pressed before the representative may start the call: when to come back, or null
 *  (then the page asks to join, as it does when the status cannot be read). "Before" by
 *  the server's clock (`now` of its answer): a customer's clock running behind would
 *  otherwise send them away while the representative may start. */
async function tooEarlyText() {
  const room = await roomStatus();
  if (!room || room.state !== 'waiting' || (room.now ?? Date.now()) >= room.joinable_from) return null;
  const from = inTheirs({ timeStyle: 'short' }).format(new Date(room.joinable_from));
  return `Your call with ${room.representative} is ${whenText(room.start)}. Come back from ${from}: the call opens then.`;
}

function enterRoom(joined, { waited = false } = {}) {
  clearTimeout(waitTimer);
  // The room page sends a customer whose access ran out back here for a new one.
  sessionStorage.setItem(`room-return:${joined.room_id}`, location.href);
  // Let in from the waiting room: the room page goes straight into the call (the
  // customer asked to join minutes ago; a lobby's second "Join" would keep them waiting).
  if (waited) sessionStorage.setItem(`room-admitted:${joined.room_id}`, '1');
  location.href = joined.link;
}

/** The network failed asking to join: while waiting, the page asks again later; else it
 *  says so, and Join may be pressed again. */
function joinUnreachable(delay) {
  if (!$('waiting').hidden) {
    waitTimer = setTimeout(() => join(Math.min(delay * 1.5, WAIT_MAX_MS)), delay);
    return;
  }
  $('join').disabled = false;
  $('error').textContent = 'Cannot reach the server. Please check your connection and press Join again.';
}

async function join(delay) {
  let res;
  try {
    res = await askToJoin();
  } catch {
    joinUnreachable(delay);
    return undefined;
  }
  if (res.ok) return enterRoom(await res.json(), { waited: !$('waiting').hidden });
  let code = '';
  let message = `the server answered ${res.status}`;
  try {
    ({ code, message } = (await res.json()).error);
  } catch { /* not the API's shape */ }
  if (code !== 'not_started') {
    $('waiting').hidden = true;
    $('join').disabled = false;
    $('error').textContent = sentence(message);
    return undefined;
  }
  if ($('waiting').hidden) {
    $('waiting-text').textContent = await waitingText();
    $('waiting').hidden = false;
  }
  waitTimer = setTimeout(() => join(Math.min(delay * 1.5, WAIT_MAX_MS)), delay);
  return undefined;
}

$('join').addEventListener('click', async () => {
  $('error').textContent = '';
  $('join').disabled = true;
  // Days early, nothing to wait for: the page says when, and marks nobody waiting.
  const early = await tooEarlyText();
  if (early) {
    clearTimeout(waitTimer);
    $('waiting-text').textContent = early;
    $('waiting').hidden = false;
    $('join').disabled = false;
    return;
  }
  // A "come back" from an earlier press is no waiting room: the room page keeps its lobby.
  $('waiting').hidden = true;
  join(WAIT_FIRST_MS);
});

load();
