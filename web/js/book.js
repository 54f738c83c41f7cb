// The booking page: pick a day, see its free slots in the visitor's own time zone (the
// desk's zone shown beside), book one, and see the confirmation with the cancel link.
// The server checks every rule; this page only shows what it answers.

import { el, byTestId, show } from './dom.js';

const $ = (id) => document.getElementById(id);
let chosen = null;

/** Today in the visitor's local calendar, YYYY-MM-DD (the date input's format). */
function today() {
  const d = new Date();
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

const mine = (iso) => new Date(iso).toLocaleString([], { weekday: 'short', day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' });
const myTime = (iso) => new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

async function errorText(res) {
  try {
    return (await res.json()).error.message;
  } catch {
    return `the server answered ${res.status}`;
  }
}

// Which `loadDay` call is the latest: an older one's answer (the page's first load, still
// waiting for the topics, then a day picked meanwhile) is dropped, or both would list
// their slots side by side.
let loads = 0;

async function loadDay() {
  const load = ++loads;
  const day = $('day').value;
  const host = $('slots');
  host.replaceChildren();
  $('slots-error').textContent = '';
  if (!day) return;
  if (day < today()) {
    $('slots-error').textContent = 'Please pick today or a later day.';
    return;
  }
  const topic = $('topic').value;
  const res = await fetch(`/api/appointments/slots?date=${encodeURIComponent(day)}${topic ? `&category=${encodeURIComponent(topic)}` : ''}`);
  if (load !== loads) return;
  if (!res.ok) {
    $('slots-error').textContent = await errorText(res);
    return;
  }
  const body = await res.json();
  if (load !== loads) return;
  host.replaceChildren();
  $('desk-zone').textContent = body.zone;
  const free = body.slots.filter((s) => s.free);
  if (free.length === 0) {
    $('slots-error').textContent = 'No free times on this day. Please pick another.';
    return;
  }
  for (const slot of free) {
    host.append(el('button', {
      type: 'button', class: 'secondary', dataset: { testid: 'slot', start: slot.start },
      title: `${slot.local_start} (${body.zone})`,
      onclick: () => choose(slot, body.zone),
    }, myTime(slot.start)));
  }
}

function choose(slot, zone) {
  chosen = { slot, zone };
  $('chosen').textContent = `${mine(slot.start)} — ${slot.local_start} ${zone}`;
  $('book-error').textContent = '';
  show($('pick'), false);
  show($('details'), true);
  $('name').focus();
}

async function book(event) {
  event.preventDefault();
  if (!chosen) return;
  const button = byTestId('book-button');
  button.disabled = true;
  try {
    const res = await fetch('/api/appointments', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        start: chosen.slot.start,
        name: $('name').value,
        email: $('email').value,
        comment: $('comment').value || undefined,
        // The topic picks who may take it: a representative holding that category.
        category: $('topic').value || undefined,
      }),
    });
    if (!res.ok) {
      $('book-error').textContent = await errorText(res);
      return;
    }
    const booked = await res.json();
    $('done-when').textContent = mine(booked.start);
    $('done-desk').textContent = `${booked.local_start} ${booked.zone}`;
    $('done-with').textContent = booked.representative;
    $('cancel-link').href = booked.cancel_url;
    show($('details'), false);
    show($('done'), true);
  } finally {
    button.disabled = false;
  }
}

/** The desk's categories as topics; `?category=<id>` in the page's address preselects one. */
async function loadTopics() {
  const res = await fetch('/api/categories');
  if (!res.ok) return;
  const wanted = new URLSearchParams(location.search).get('category');
  for (const c of await res.json()) {
    $('topic').append(el('option', { value: c.id, selected: c.id === wanted }, c.name));
  }
}

$('my-zone').textContent = Intl.DateTimeFormat().resolvedOptions().timeZone || 'local';
$('topic').addEventListener('change', loadDay);
$('day').min = today();
$('day').value = today();
$('day').addEventListener('change', loadDay);
$('book-form').addEventListener('submit', book);
$('back').addEventListener('click', () => {
  show($('details'), false);
  show($('pick'), true);
  loadDay();
});
loadTopics().then(loadDay);
