// The appointment's page behind the mail's link: opening it only shows the appointment
// (mail scanners follow links); one button POSTs the cancellation, another joins the
// video call once the representative has started it. Cancelling twice or a bad link is
// a plain message.

const $ = (id) => document.getElementById(id);
const token = new URLSearchParams(location.search).get('token') || '';

const mine = (iso) => new Date(iso).toLocaleString([], { dateStyle: 'full', timeStyle: 'short' });

async function errorText(res) {
  try {
    return (await res.json()).error.message;
  } catch {
    return `the server answered ${res.status}`;
  }
}

function render(a) {
  $('when').textContent = mine(a.start);
  $('desk').textContent = `${a.local_start} ${a.zone}`;
  $('who').textContent = a.name;
  const cancelled = a.status === 'cancelled';
  $('state').textContent = cancelled ? 'This appointment is cancelled.' : '';
  $('confirm').hidden = cancelled;
  $('join').hidden = cancelled;
  $('appointment').hidden = false;
}

async function load() {
  if (!token) {
    $('error').textContent = 'This link has no cancel token; please use the whole link from your mail.';
    return;
  }
  const res = await fetch(`/api/appointments/cancel?token=${encodeURIComponent(token)}`);
  if (!res.ok) {
    $('error').textContent = await errorText(res);
    return;
  }
  render(await res.json());
}

$('confirm').addEventListener('click', async () => {
  $('confirm').disabled = true;
  try {
    const res = await fetch('/api/appointments/cancel', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token }),
    });
    if (!res.ok) {
      $('error').textContent = await errorText(res);
      return;
    }
    const outcome = await res.json();
    render(outcome.appointment);
    $('state').textContent = outcome.outcome === 'already_cancelled'
      ? 'This appointment was already cancelled.'
      : 'Your appointment is cancelled.';
  } finally {
    $('confirm').disabled = false;
  }
});

// The waiting room: before the representative starts the call, "Join" waits here
// ("Your call with Anna starts at 10:00; you will be let in when Anna joins", the time in
// this browser's zone) and asks again, every 2 s growing to 5 s, until it is let in. Each
// ask also shows the customer as waiting on the representative's list.
const WAIT_FIRST_MS = 2000;
const WAIT_MAX_MS = 5000;
let waitTimer = null;

async function askToJoin() {
  return fetch('/api/appointments/join', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token }),
  });
}

async function waitingText() {
  const res = await fetch(`/api/appointments/room?token=${encodeURIComponent(token)}`);
  if (!res.ok) return 'Your call has not started yet; you will be let in when your representative joins.';
  const room = await res.json();
  const at = new Date(room.start).toLocaleTimeString([], { timeStyle: 'short' });
  return `Your call with ${room.representative} starts at ${at}; you will be let in when ${room.representative} joins.`;
}

function enterRoom(joined) {
  clearTimeout(waitTimer);
  // The room page sends a customer whose access ran out back here for a new one.
  sessionStorage.setItem(`room-return:${joined.room_id}`, location.href);
  location.href = joined.link;
}

async function join(delay) {
  const res = await askToJoin();
  if (res.ok) return enterRoom(await res.json());
  let code = '';
  let message = `the server answered ${res.status}`;
  try {
    ({ code, message } = (await res.json()).error);
  } catch { /* not the API's shape */ }
  if (code !== 'not_started') {
    $('waiting').hidden = true;
    $('join').disabled = false;
    $('error').textContent = message;
    return;
  }
  if ($('waiting').hidden) {
    $('waiting-text').textContent = await waitingText();
    $('waiting').hidden = false;
  }
  waitTimer = setTimeout(() => join(Math.min(delay * 1.5, WAIT_MAX_MS)), delay);
}

$('join').addEventListener('click', () => {
  $('error').textContent = '';
  $('join').disabled = true;
  join(WAIT_FIRST_MS);
});

load();
