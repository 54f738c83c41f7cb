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

$('join').addEventListener('click', async () => {
  $('error').textContent = '';
  $('join').disabled = true;
  try {
    const res = await fetch('/api/appointments/join', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token }),
    });
    if (!res.ok) {
      $('error').textContent = await errorText(res);
      return;
    }
    location.href = (await res.json()).link;
  } finally {
    $('join').disabled = false;
  }
});

load();
