// The booking page, as Calendly has it: what is booked (length, topic) and a time-zone
// picker (with a search that filters it as one types) beside a month view that marks the days with free times (GET
// /api/appointments/days, in the chosen zone) and the chosen day's times (GET
// /api/appointments/slots). Then the customer's details, and the confirmation with
// add-to-calendar links and where the confirmation went.
//
// With `?reschedule=<token>` (the link in every mail and on the appointment's page) the
// same page moves that appointment: it shows the current time, offers the same topic's
// free times, and POSTs /api/appointments/reschedule instead of a booking.
//
// Times are shown in the chosen zone (the browser's by default) and the booking sends it,
// so mails and pages give times in it; the desk's zone is shown beside. The server checks
// every rule; this page checks only what a form can (a name and an email given) before
// sending, and shows each refusal at its field.
//
// A time is chosen for a topic: changing the topic afterwards goes back to the times.
// Topics nobody serves for appointments are not offered (an address's `?category=` still
// opens one, and the page then says nobody serves it). Once booked, the topic and zone
// pickers go: they would change nothing.

import { el, byTestId, show } from './dom.js';
import { showFieldErrors, problemOf, refusalAt, clearFieldErrors, sentence } from './field-errors.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const rescheduleToken = params.get('reschedule');

const state = {
  zone: Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC',
  deskZone: null,
  slotMinutes: null,
  month: null, // { year, month } (month 1–12) in the chosen zone
  day: null, // 'YYYY-MM-DD' in the chosen zone
  chosen: null, // a slot
  current: null, // the appointment being moved
};

/** The API's refusal, as a sentence to show. */
async function errorText(res) {
  try {
    return sentence((await res.json()).error.message);
  } catch {
    return `The server answered ${res.status}.`;
  }
}

/** A month as its label says it ("December 2026"). */
const monthName = ({ year, month }) => new Intl.DateTimeFormat([], { month: 'long', year: 'numeric', timeZone: 'UTC' })
  .format(new Date(Date.UTC(year, month - 1, 1)));

const fmt = (options) => new Intl.DateTimeFormat([], { timeZone: state.zone, ...options });
const timeIn = (iso) => fmt({ hour: '2-digit', minute: '2-digit' }).format(new Date(iso));
const longWhen = (iso) => fmt({ weekday: 'long', day: 'numeric', month: 'long', year: 'numeric', hour: '2-digit', minute: '2-digit' }).format(new Date(iso));
const zoneLabel = (zone) => zone.replaceAll('_', ' ');

/** Today's date in the chosen zone, as {year, month, day}. */
function todayInZone() {
  const parts = Object.fromEntries(new Intl.DateTimeFormat('en-CA', { timeZone: state.zone, year: 'numeric', month: '2-digit', day: '2-digit' })
    .formatToParts(new Date()).map((p) => [p.type, p.value]));
  return { year: Number(parts.year), month: Number(parts.month), day: Number(parts.day) };
}

const iso = (y, m, d) => `${y}-${String(m).padStart(2, '0')}-${String(d).padStart(2, '0')}`;
const topic = () => (state.current ? state.current.category || '' : $('topic').value);
const categoryParam = () => (topic() ? `&category=${encodeURIComponent(topic())}` : '');

// Which load is the latest: an older answer (the first load still waiting for the topics,
// then a day picked meanwhile) is dropped, or both would list their slots side by side.
let monthLoads = 0;
let dayLoads = 0;

/** The month's heading: its name, and "previous" only after the current month. */
function monthHead() {
  const { year, month } = state.month;
  $('month-label').textContent = monthName(state.month);
  const today = todayInZone();
  $('prev-month').disabled = year < today.year || (year === today.year && month <= today.month);
}

/** The month `state.month` with its free days. `seek`: how many months further it may turn
 *  when this one has no free day left (at a month's end), as a booking page opens on the
 *  first month a customer can book in; `from`: the month the seeking started at, shown
 *  again (with "nothing is free") when none of them has a free day. */
async function loadMonth({ seek = 0, from = null } = {}) {
  const load = ++monthLoads;
  const { year, month } = state.month;
  monthHead();
  show($('nothing-free'), false);
  const res = await fetch(`/api/appointments/days?month=${year}-${String(month).padStart(2, '0')}&zone=${encodeURIComponent(state.zone)}${categoryParam()}`);
  if (load !== monthLoads) return;
  if (!res.ok) {
    $('slots-error').textContent = await errorText(res);
    return;
  }
  const body = await res.json();
  if (load !== monthLoads) return;
  state.deskZone = body.zone;
  state.slotMinutes = body.slot_minutes;
  $('desk-zone').textContent = zoneLabel(body.zone);
  $('length').textContent = `${body.slot_minutes} min`;
  const nobody = body.representatives === 0;
  show($('nobody'), nobody);
  show($('pick-grid'), !nobody);
  if (nobody) return;
  if (body.free_days.length === 0 && seek > 0) {
    state.month = month === 12 ? { year: year + 1, month: 1 } : { year, month: month + 1 };
    loadMonth({ seek: seek - 1, from: from || { year, month } });
    return;
  }
  if (body.free_days.length === 0 && from) {
    // Nothing in any month it looked at: back to the first, saying so, rather than
    // landing on a month the customer never chose.
    const last = state.month;
    state.month = from;
    state.day = null;
    monthHead();
    renderMonth(new Set());
    $('nothing-free').textContent = `Nothing is free from ${monthName(from)} to ${monthName(last)}. Please come back later.`;
    show($('nothing-free'), true);
    $('day-label').textContent = '';
    $('slots').replaceChildren();
    $('slots-error').textContent = '';
    return;
  }
  renderMonth(new Set(body.free_days));
  // The first free day is picked for the customer, as a start.
  if (!state.day || !state.day.startsWith(`${year}-${String(month).padStart(2, '0')}`)) {
    state.day = body.free_days[0] || null;
    if (state.day) {
      renderMonth(new Set(body.free_days));
    }
  }
  loadDay();
}

function renderMonth(free) {
  const { year, month } = state.month;
  const first = new Date(Date.UTC(year, month - 1, 1));
  const lead = (first.getUTCDay() + 6) % 7; // Monday first
  const count = new Date(Date.UTC(year, month, 0)).getUTCDate();
  const today = todayInZone();
  const cells = [];
  for (let i = 0; i < lead; i += 1) cells.push(el('span'));
  for (let d = 1; d <= count; d += 1) {
    const date = iso(year, month, d);
    const isFree = free.has(date);
    const label = new Intl.DateTimeFormat([], { weekday: 'long', day: 'numeric', month: 'long', timeZone: 'UTC' })
      .format(new Date(Date.UTC(year, month - 1, d)));
    cells.push(el('button', {
      type: 'button',
      class: date === iso(today.year, today.month, today.day) ? 'today' : undefined,
      disabled: !isFree,
      'aria-pressed': String(date === state.day),
      'aria-label': `${label}${isFree ? ', free times' : ', nothing free'}`,
      dataset: { testid: isFree ? 'free-day' : 'day', date },
      onclick: () => {
        state.day = date;
        renderMonth(free);
        // The month is drawn anew: focus stays on the chosen day, not on the page.
        $('days').querySelector(`[data-date="${date}"]`)?.focus();
        loadDay({ picked: true });
      },
    }, String(d)));
  }
  $('days').replaceChildren(...cells);
}

/**
 * A day picked on a phone: its times are below the month, out of sight. They are brought
 * into view under the day's heading, and focus goes to the first (the group is named by
 * the heading, so a screen reader says which day). Side by side (a desktop), the times
 * are in view already and focus stays on the day.
 */
function showTimes() {
  const first = $('slots').querySelector('button');
  if (!first || $('slots').getBoundingClientRect().top < $('days').getBoundingClientRect().bottom) return;
  const smooth = !matchMedia('(prefers-reduced-motion: reduce)').matches;
  $('day-label').scrollIntoView({ block: 'start', behavior: smooth ? 'smooth' : 'auto' });
  first.focus({ preventScroll: true });
}

/** The chosen day's free times; `picked`: the customer chose the day (see showTimes). */
async function loadDay({ picked = false } = {}) {
  const load = ++dayLoads;
  const host = $('slots');
  host.replaceChildren();
  $('slots-error').textContent = '';
  $('day-label').textContent = '';
  if (!state.day) {
    $('slots-error').textContent = 'No free times this month. Please look at the next one.';
    return;
  }
  const [y, m, d] = state.day.split('-').map(Number);
  $('day-label').textContent = new Intl.DateTimeFormat([], { weekday: 'long', day: 'numeric', month: 'long', timeZone: 'UTC' })
    .format(new Date(Date.UTC(y, m - 1, d)));
  const res = await fetch(`/api/appointments/slots?date=${state.day}&zone=${encodeURIComponent(state.zone)}${categoryParam()}`);
  if (load !== dayLoads) return;
  if (!res.ok) {
    $('slots-error').textContent = await errorText(res);
    return;
  }
  const body = await res.json();
  if (load !== dayLoads) return;
  host.replaceChildren();
  const free = body.slots.filter((s) => s.free && (!state.current || s.start !== state.current.start));
  if (free.length === 0) {
    $('slots-error').textContent = 'No free times on this day. Please pick another.';
    return;
  }
  for (const slot of free) {
    host.append(el('button', {
      type: 'button', class: 'secondary', dataset: { testid: 'slot', start: slot.start },
      title: `${slot.local_start} ${body.zone} at the desk`,
      onclick: () => choose(slot),
    }, timeIn(slot.start)));
  }
  if (picked) showTimes();
}

const deskTime = (isoStart) => new Intl.DateTimeFormat([], { timeZone: state.deskZone, hour: '2-digit', minute: '2-digit' })
  .format(new Date(isoStart));

function choose(slot) {
  state.chosen = slot;
  $('chosen').textContent = `${longWhen(slot.start)}–${timeIn(slot.end)} (${zoneLabel(state.zone)})`;
  $('chosen-desk').textContent = `${deskTime(slot.start)} ${zoneLabel(state.deskZone)} at the desk · ${state.slotMinutes} min`;
  $('book-error').textContent = '';
  clearFieldErrors(Object.values(fields()));
  show($('pick'), false);
  show($('details'), true);
  if (state.current) $('book-button').focus();
  else $('name').focus();
}

/** The outcome; `mailed`: whether the server sends mail (without SMTP_URL it only logs
 *  it, and the page does not claim a confirmation was sent). */
function showDone(a, title, mailed) {
  $('done-title').textContent = title;
  show($('sent-to'), mailed !== false);
  show($('not-mailed'), mailed === false);
  if (mailed === false) $('about-mail').textContent = 'Joined from your browser, with the link to your appointment below.';
  $('done-when').textContent = `${longWhen(a.start)}–${timeIn(a.end)} (${zoneLabel(a.customer_zone)})`;
  const deskWhen = a.local_start.slice(0, 10) === a.customer_local_start.slice(0, 10) ? a.local_start.slice(11) : a.local_start;
  $('done-desk').textContent = `${deskWhen} ${zoneLabel(a.zone)}`;
  $('done-length').textContent = `${a.minutes} min`;
  $('done-summary').textContent = a.summary;
  $('done-email').textContent = a.email;
  $('add-google').href = a.links.calendar.google;
  $('add-outlook').href = a.links.calendar.outlook;
  $('add-ics').href = a.links.calendar.ics;
  $('cancel-link').href = a.links.manage;
  if (state.current) {
    // Moved: the card beside says what the appointment is now, not what it was.
    state.current = a;
    $('current-when').textContent = `${longWhen(a.start)} (${zoneLabel(state.zone)})`;
  }
  show($('details'), false);
  show($('pick'), false);
  // Booked: a topic or zone picked now would change nothing (the zone's picker is in the
  // times' card, gone with it; the title names the topic).
  show($('topic-field'), false);
  show($('done'), true);
  // A screen reader says the outcome; the form the focus was on is gone.
  $('done-title').focus();
}

/** The booking's fields, and where the API's refusals of them go. */
const fields = () => ({ name: $('name'), email: $('email'), comment: $('comment') });
const FIELD_OF = { invalid_name: 'name', invalid_email: 'email', comment_too_long: 'comment' };

/** The details as the page can check them (before sending), each problem at its field. */
function detailsOk() {
  if (state.current) return true;
  const { name, email } = fields();
  return showFieldErrors([
    [name, problemOf(name, { missing: 'Please enter your name.' })],
    [email, problemOf(email, { missing: 'Please enter your email address.', type: 'Please enter an email address like name@example.com.' })],
  ]);
}

async function submit(event) {
  event.preventDefault();
  if (!state.chosen) return;
  $('book-error').textContent = '';
  if (!detailsOk()) return;
  const button = byTestId('book-button');
  button.disabled = true;
  try {
    const res = state.current
      ? await fetch('/api/appointments/reschedule', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ token: rescheduleToken, start: state.chosen.start }),
      })
      : await fetch('/api/appointments', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          start: state.chosen.start,
          name: $('name').value,
          email: $('email').value,
          comment: $('comment').value || undefined,
          // The topic picks who may take it: a representative holding that category.
          category: $('topic').value || undefined,
          zone: state.zone,
          // The mails then give times as this page does ("10:00 AM" or "10:00").
          hour12: new Intl.DateTimeFormat([], { hour: 'numeric' }).resolvedOptions().hour12 === true,
        }),
      });
    if (!res.ok) {
      const error = await res.json().then((b) => b.error).catch(() => null)
        || { code: '', message: `the server answered ${res.status}` };
      const at = Object.fromEntries(Object.entries(FIELD_OF).map(([code, id]) => [code, fields()[id]]));
      refusalAt(error, state.current ? {} : at, $('book-error'));
      return;
    }
    const body = await res.json();
    if (state.current) showDone(body.appointment, 'Your appointment is moved', body.mailed);
    else showDone(body, 'You are booked', body.mailed);
  } finally {
    button.disabled = false;
  }
}

/** The desk's categories as topics (GET /api/appointments/topics: each with how many
 *  representatives serve it, in one read), those nobody serves left out (they would only
 *  say "come back later"); `?category=<id>` in the page's address preselects one, offered
 *  even so. */
async function loadTopics() {
  const res = await fetch('/api/appointments/topics');
  if (!res.ok) return;
  const wanted = params.get('category');
  for (const t of await res.json()) {
    if (t.representatives === 0 && t.id !== wanted) continue;
    $('topic').append(el('option', { value: t.id, selected: t.id === wanted }, t.name));
  }
  updateTitle();
}

function updateTitle() {
  const select = $('topic');
  const name = select.value ? select.options[select.selectedIndex].textContent : null;
  if (!state.current) $('about-title').textContent = name ? `Video call — ${name}` : 'Video call with the desk';
}

/** A zone as the picker names it: its place, its offset from UTC and the time there now
 *  ("Europe/Berlin · GMT+1 · 17:05"), so a customer finds theirs by the clock they see. */
function zoneOption(zone, now) {
  try {
    const parts = new Intl.DateTimeFormat('en-GB', { timeZone: zone, hour: '2-digit', minute: '2-digit', timeZoneName: 'shortOffset' })
      .formatToParts(now);
    const part = (type) => parts.find((p) => p.type === type)?.value ?? '';
    return `${zoneLabel(zone)} · ${part('timeZoneName')} · ${part('hour')}:${part('minute')}`;
  } catch {
    return zoneLabel(zone);
  }
}

/** The zones the picker offers: each with its label and what a search finds it by (its
 *  label, so its place, offset and time, and its long names, "Central European Time"). */
let zones = [];

/** Lower case, without accents, `_` and `/` as spaces, one minus sign. */
const searchable = (text) => text.normalize('NFD').replace(/\p{M}/gu, '').toLowerCase()
  .replaceAll('_', ' ').replaceAll('/', ' ').replaceAll('\u2212', '-');

/** The zone's long names in the browser's language and in English, for the search. */
function longNames(zone, now) {
  const names = [];
  for (const locale of [[], 'en']) {
    for (const timeZoneName of ['long', 'longGeneric']) {
      try {
        names.push(new Intl.DateTimeFormat(locale, { timeZone: zone, timeZoneName }).formatToParts(now)
          .find((p) => p.type === 'timeZoneName')?.value ?? '');
      } catch { /* an engine without longGeneric */ }
    }
  }
  return names.join(' ');
}

/** Whether a zone's search text holds a word of the query: an offset ("GMT+1", "UTC-5",
 *  "+9") only as a whole, so GMT+1 finds no GMT+10; other words anywhere ("york"). */
function holds(key, word) {
  const offset = word.match(/^(?:gmt|utc)?([+-]\d.*)$/);
  if (offset) return key.split(/[\s·]+/).includes(`gmt${offset[1]}`);
  return key.includes(word);
}

/** The zone's option; its region is its group. */
const zoneOptionOf = (z) => el('option', { value: z.zone, selected: z.zone === state.zone }, z.label);
const regionOf = (zone) => (zone.includes('/') ? zone.split('/')[0] : 'Other');

/** The picker's options: the zones the search finds, grouped by region, the chosen one
 *  kept first when the search does not find it (so the picker still shows it, and a
 *  change is always the customer's pick). */
function renderZones() {
  const query = $('zone-search').value.trim();
  const words = searchable(query).split(/\s+/).filter(Boolean);
  const found = words.length ? zones.filter((z) => words.every((w) => holds(z.key, w))) : zones;
  const groups = new Map();
  for (const z of found) groups.set(regionOf(z.zone), [...(groups.get(regionOf(z.zone)) || []), z]);
  const chosen = zones.find((z) => z.zone === state.zone);
  const keep = chosen && !found.includes(chosen) ? [el('optgroup', { label: 'Chosen' }, zoneOptionOf(chosen))] : [];
  $('zone').replaceChildren(...keep, ...[...groups].map(([region, list]) => el('optgroup', { label: region }, list.map(zoneOptionOf))));
  $('zone').value = state.zone;
  $('zone-count').textContent = !words.length ? ''
    : found.length === 0 ? `No time zone matches “${query}”.`
      : `${found.length === 1 ? '1 time zone matches' : `${found.length} time zones match`}; Enter picks ${found[0].label}.`;
  return found;
}

/** The zone picker: every IANA zone the browser knows, the browser's own first when it
 *  knows it under another name; a search above it filters as one types. */
function fillZones() {
  const mine = state.zone;
  const names = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : [mine];
  const all = names.includes(mine) ? names : [mine, ...names];
  zones = all.map((zone) => ({ zone, label: zoneLabel(zone), key: searchable(zone) }));
  renderZones();
  // Offsets, times and long names once the page is up: 400 zones' formatters take a
  // few tenths of a second.
  const later = window.requestIdleCallback || ((f) => setTimeout(f, 0));
  later(() => {
    const now = new Date();
    for (const z of zones) {
      z.label = zoneOption(z.zone, now);
      z.key = searchable(`${z.label} ${longNames(z.zone, now)}`);
    }
    renderZones();
  });
}

/** The customer picked `zone`: the month again, in it. */
function pickZone(zone) {
  if (!zone || zone === state.zone) return;
  state.zone = zone;
  $('zone').value = zone;
  startMonth();
}

/** Reschedule mode: the appointment being moved. */
async function loadCurrent() {
  const res = await fetch(`/api/appointments/booking?token=${encodeURIComponent(rescheduleToken)}`);
  if (!res.ok) {
    show($('pick'), false);
    $('page-title').textContent = 'Reschedule';
    $('about').replaceChildren(el('p', { class: 'form-error', role: 'alert', dataset: { testid: 'reschedule-error' } }, await errorText(res)));
    return false;
  }
  const a = await res.json();
  state.current = a;
  if (a.customer_zone) {
    state.zone = a.customer_zone;
    fillZones();
  }
  $('page-title').textContent = 'Reschedule your video call';
  $('about-kind').textContent = 'Reschedule';
  $('about-title').textContent = a.summary;
  $('current-when').textContent = `${longWhen(a.start)} (${zoneLabel(state.zone)})`;
  show($('current'), true);
  // The move keeps the topic: its representatives' free times are offered.
  show($('topic-field'), false);
  show($('who-fields'), false);
  $('details-title').textContent = 'Move your appointment';
  $('book-button').textContent = 'Reschedule';
  // Cancelled, or begun by the server's clock (the answer's Date): moving is refused.
  const serverNow = Date.parse(res.headers.get('date')) || Date.now();
  const refusal = a.status !== 'booked' ? 'This appointment is cancelled; please book a new one.'
    : Date.parse(a.start) <= serverNow ? 'This appointment has already begun, so it can no longer be moved. Please book a new one.'
      : null;
  if (refusal) {
    show($('pick'), false);
    $('about').append(el('p', { class: 'form-error', role: 'alert', dataset: { testid: 'reschedule-error' } }, refusal),
      el('p', {}, el('a', { class: 'button', href: a.links?.book || '/book.html', dataset: { testid: 'book-new' } }, 'Book a new time')));
    return false;
  }
  return true;
}

/** Months the page turns by itself past ones with nothing free (the first months it shows). */
const SEEK_MONTHS = 2;

/** {year, month} of `ms` in the chosen zone. */
function monthInZone(ms) {
  const parts = new Intl.DateTimeFormat('en-CA', { timeZone: state.zone, year: 'numeric', month: '2-digit' }).formatToParts(new Date(ms));
  const part = (type) => Number(parts.find((p) => p.type === type).value);
  return { year: part('year'), month: part('month') };
}

function startMonth() {
  const today = todayInZone();
  state.month = { year: today.year, month: today.month };
  // Rescheduling: the month of the appointment being moved, when it is a later one.
  if (state.current) {
    const booked = monthInZone(Date.parse(state.current.start));
    if (booked.year * 12 + booked.month > today.year * 12 + today.month) state.month = booked;
  }
  state.day = null;
  loadMonth({ seek: SEEK_MONTHS });
}

$('prev-month').addEventListener('click', () => {
  const { year, month } = state.month;
  state.month = month === 1 ? { year: year - 1, month: 12 } : { year, month: month - 1 };
  state.day = null;
  loadMonth();
});
$('next-month').addEventListener('click', () => {
  const { year, month } = state.month;
  state.month = month === 12 ? { year: year + 1, month: 1 } : { year, month: month + 1 };
  state.day = null;
  loadMonth();
});
$('topic').addEventListener('change', () => {
  updateTitle();
  // A time was chosen for the topic before: another topic's representatives may not be
  // free then (or at all), so the customer chooses the time again.
  if (!$('details').hidden) {
    state.chosen = null;
    show($('details'), false);
    show($('pick'), true);
  }
  state.day = null;
  loadMonth();
});
$('zone').addEventListener('change', () => pickZone($('zone').value));
$('zone-search').addEventListener('input', renderZones);
$('zone-search').addEventListener('keydown', (event) => {
  // Enter picks the first zone found; the arrow goes on to the list of those found.
  if (event.key === 'Enter') {
    event.preventDefault();
    const [first] = renderZones();
    if (first) {
      pickZone(first.zone);
      renderZones();
      $('zone-count').textContent = `Time zone: ${first.label}.`;
    }
  } else if (event.key === 'ArrowDown') {
    event.preventDefault();
    $('zone').focus();
  }
});
$('book-form').addEventListener('submit', submit);
$('back').addEventListener('click', () => {
  show($('details'), false);
  show($('pick'), true);
  loadDay();
});

fillZones();
(async () => {
  if (rescheduleToken && !(await loadCurrent())) return;
  if (!rescheduleToken) await loadTopics();
  startMonth();
})();
