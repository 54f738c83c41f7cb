// The admin page's Reports view (GET /api/reports): a range of days in a time zone (the
// desk's by default, chosen from the IANA zones), one topic or all; tiles with the range's totals, two charts
// (conversations and abandoned per day; median and 90th-percentile wait per day) drawn
// with Chart.js (served by the hub from /vendor, never a CDN), and the tables per day and
// topic and per agent. "Export CSV" downloads the same report as a file. Read when the view
// opens and on "Show"; every figure is the server's (the page computes nothing).

import { el, api } from './dom.js';

const $ = (id) => document.getElementById(id);

let volumeChart = null;
let waitsChart = null;
let loadedTopics = false;

/** `YYYY-MM-DD` of today plus `days`, in `zone` (the browser's when it is not given). */
function dayIn(days, zone) {
  const d = new Date(Date.now() + days * 86_400_000);
  try {
    // en-CA writes dates as YYYY-MM-DD.
    return new Intl.DateTimeFormat('en-CA', { timeZone: zone || undefined, year: 'numeric', month: '2-digit', day: '2-digit' }).format(d);
  } catch {
    return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
  }
}

/** The desk's zone (the one its chat hours and appointments are in), once read. */
let deskZone = null;

/** The IANA zones this browser knows, UTC included. */
function allZones() {
  let zones = [];
  try { zones = Intl.supportedValuesOf('timeZone'); } catch { zones = []; }
  return [...new Set(['UTC', ...zones])];
}

/**
 * Fills the zone list once: the desk's zone first (the default), the browser's next when it
 * differs, then every zone A to Z.
 */
async function loadZones() {
  const select = $('reports-zone');
  if (select.options.length) return;
  const hours = await api('GET', '/api/admin/chat-hours');
  deskZone = (hours.ok && hours.data.time_zone) || 'UTC';
  const mine = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const option = (value, text) => el('option', { value, text });
  const first = [option(deskZone, `${deskZone} (the desk's)`)];
  if (mine && mine !== deskZone) first.push(option(mine, `${mine} (this browser's)`));
  const rest = allZones().filter((z) => z !== deskZone).map((z) => option(z, z));
  if (select.options.length) return; // filled meanwhile
  select.append(...first, el('hr'), ...rest);
  select.value = deskZone;
}

/** A duration for people: "45 s", "3 min 20 s", "2 h 05 min"; "—" when unknown. */
export function duration(ms) {
  if (ms === null || ms === undefined) return '—';
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)} s`;
  const secs = Math.round(ms / 1000);
  if (secs < 60) return `${secs} s`;
  const mins = Math.floor(secs / 60);
  if (mins < 60) return secs % 60 ? `${mins} min ${secs % 60} s` : `${mins} min`;
  return `${Math.floor(mins / 60)} h ${String(mins % 60).padStart(2, '0')} min`;
}

function rating(f) {
  const parts = [];
  if (f.rating_count) parts.push(`${f.rating_average.toFixed(1)} ★ (${f.rating_count})`);
  if (f.thumbs_up || f.thumbs_down) parts.push(`👍 ${f.thumbs_up} · 👎 ${f.thumbs_down}`);
  return parts.join(' · ') || '—';
}

function query() {
  const params = new URLSearchParams({
    from: $('reports-from').value,
    to: $('reports-to').value,
    zone: $('reports-zone').value,
  });
  if ($('reports-category').value) params.set('category', $('reports-category').value);
  if ($('reports-label').value) params.set('label', $('reports-label').value);
  return params;
}

async function loadTopics() {
  if (loadedTopics) return;
  const answer = await api('GET', '/api/categories');
  if (!answer.ok) return;
  loadedTopics = true;
  for (const c of answer.data) $('reports-category').append(el('option', { value: c.id, text: c.name }));
  const labels = await api('GET', '/api/labels');
  if (labels.ok) for (const l of labels.data) $('reports-label').append(el('option', { value: l.id, text: l.name }));
}

/** A share as a percentage ("—" without one). */
const percent = (share) => (share === null || share === undefined ? '—' : `${Math.round(share * 100)} %`);

function tile(label, value, testid) {
  return el('div', { class: 'stat', dataset: { testid } }, el('span', { class: 'value', text: value }), el('span', { class: 'muted', text: label }));
}

function tiles(t) {
  const offered = t.conversations + t.abandoned;
  const share = offered ? ` (${Math.round((100 * t.abandoned) / offered)} %)` : '';
  $('reports-tiles').replaceChildren(
    tile('Conversations', String(t.conversations), 'report-conversations'),
    tile('Abandoned', `${t.abandoned}${share}`, 'report-abandoned'),
    tile('Median wait', duration(t.wait_median_ms), 'report-wait'),
    tile('90th percentile wait', duration(t.wait_p90_ms), 'report-wait-p90'),
    tile('Median first response', duration(t.first_response_median_ms), 'report-first-response'),
    tile('Median handle time', duration(t.handle_median_ms), 'report-handle'),
    tile('Rating', rating(t), 'report-rating'),
    tile('Offline messages (handled)', `${t.offline_messages} (${t.offline_handled})`, 'report-offline'),
    tile('Reopen rate', `${percent(t.reopen_rate)} (${t.reopened} of ${t.resolved})`, 'report-reopen-rate'),
    tile('Median time to resolution', duration(t.resolution_median_ms), 'report-resolution'),
    tile('Bot: resolved / handed over', `${t.bot_resolved ?? 0} / ${t.bot_handed_over ?? 0}`, 'report-bot'),
  );
}

/** Per day (every day of the range, empty ones too), every topic shown together. */
function perDay(report) {
  const days = [];
  const from = new Date(`${report.from}T12:00:00Z`);
  const to = new Date(`${report.to}T12:00:00Z`);
  for (let d = from; d <= to; d = new Date(d.getTime() + 86_400_000)) days.push(d.toISOString().slice(0, 10));
  const empty = { conversations: 0, abandoned: 0, wait_median_ms: null, wait_p90_ms: null };
  const rows = new Map(days.map((d) => [d, empty]));
  for (const r of report.day_totals) if (rows.has(r.day)) rows.set(r.day, r);
  return { days, rows };
}

function draw(report) {
  if (!window.Chart) return; // the library did not load: the tables still say it all
  const { days, rows } = perDay(report);
  const minutes = (ms) => (ms === null ? null : Math.round(ms / 600) / 100);
  const css = getComputedStyle(document.documentElement);
  const accent = css.getPropertyValue('--accent').trim() || '#1f5fbf';
  // Axis labels and legends in the page's own muted ink, light or dark.
  window.Chart.defaults.color = css.getPropertyValue('--muted').trim() || '#5b6475';
  window.Chart.defaults.borderColor = css.getPropertyValue('--line').trim() || '#d9dee7';
  const common = { responsive: true, maintainAspectRatio: false, animation: false, plugins: { legend: { position: 'bottom' } } };
  volumeChart?.destroy();
  waitsChart?.destroy();
  volumeChart = new window.Chart($('reports-volume'), {
    type: 'bar',
    data: {
      labels: days,
      datasets: [
        { label: 'Conversations', data: days.map((d) => rows.get(d).conversations), backgroundColor: accent, stack: 'all' },
        { label: 'Abandoned', data: days.map((d) => rows.get(d).abandoned), backgroundColor: '#c2410c', stack: 'all' },
      ],
    },
    options: { ...common, scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } } },
  });
  waitsChart = new window.Chart($('reports-waits'), {
    type: 'line',
    data: {
      labels: days,
      datasets: [
        { label: 'Median', data: days.map((d) => minutes(rows.get(d).wait_median_ms)), borderColor: accent, backgroundColor: accent, spanGaps: true },
        { label: '90th percentile', data: days.map((d) => minutes(rows.get(d).wait_p90_ms)), borderColor: '#7c3aed', backgroundColor: '#7c3aed', borderDash: [6, 4], spanGaps: true },
      ],
    },
    options: { ...common, scales: { y: { beginAtZero: true, title: { display: true, text: 'minutes' } } } },
  });
}

function tables(report) {
  $('reports-days').replaceChildren(...report.days.map((r) => el('tr', { dataset: { testid: 'report-day' } },
    el('td', { text: r.day }),
    el('td', { text: r.category_name }),
    el('td', { text: String(r.conversations) }),
    el('td', { text: String(r.abandoned) }),
    el('td', { text: `${duration(r.wait_median_ms)} / ${duration(r.wait_p90_ms)}` }),
    el('td', { text: duration(r.first_response_median_ms) }),
    el('td', { text: duration(r.handle_median_ms) }),
    el('td', { text: rating(r) }),
    el('td', { text: `${r.offline_messages} (${r.offline_handled})` }))));
  $('reports-agents').replaceChildren(...report.agents.map((a) => el('tr', { dataset: { testid: 'report-agent' } },
    el('td', { text: a.agent_name }),
    el('td', { text: String(a.conversations) }),
    el('td', { text: `${duration(a.first_response_median_ms)} / ${duration(a.first_response_p90_ms)}` }),
    el('td', { text: `${duration(a.handle_median_ms)} / ${duration(a.handle_p90_ms)}` }),
    el('td', { text: String(a.unanswered) }),
    el('td', { text: rating(a) }),
    el('td', { text: String(a.offline_handled) }))));
  $('reports-labels').replaceChildren(...(report.labels || []).map((l) => el('tr', { dataset: { testid: 'report-label' } },
    el('td', { text: l.label_name }),
    el('td', { text: String(l.conversations) }),
    el('td', { text: String(l.resolved) }),
    el('td', { text: `${l.reopened} (${percent(l.reopen_rate)})` }),
    el('td', { text: `${duration(l.resolution_median_ms)} / ${duration(l.resolution_p90_ms)}` }),
    el('td', { text: rating(l) }))));
  $('reports-empty').hidden = report.days.length > 0;
}

async function load() {
  if ($('console').hidden || $('reports').hidden) return;
  await loadZones();
  // The days are the desk's (its today), as the report counts them.
  if (!$('reports-from').value) $('reports-from').value = dayIn(-6, $('reports-zone').value);
  if (!$('reports-to').value) $('reports-to').value = dayIn(0, $('reports-zone').value);
  loadTopics();
  const params = query();
  $('reports-csv').href = `/api/reports?${params}&format=csv`;
  $('reports-error').textContent = '';
  const answer = await api('GET', `/api/reports?${params}`);
  if (!answer.ok) {
    $('reports-error').textContent = answer.error.message;
    return;
  }
  tiles(answer.data.totals);
  tables(answer.data);
  draw(answer.data);
  document.body.dataset.reportShown = `${answer.data.from}..${answer.data.to}`;
}

$('reports-form').addEventListener('submit', (e) => {
  e.preventDefault();
  load();
});
for (const id of ['reports-from', 'reports-to', 'reports-category', 'reports-label', 'reports-zone']) {
  $(id).addEventListener('change', () => { $('reports-csv').href = `/api/reports?${query()}&format=csv`; });
}
document.addEventListener('admin-view', (e) => { if (e.detail === 'reports') load(); });
// Signed in on the Reports view (a reload, a link): read once the console appears.
new MutationObserver(load).observe($('console'), { attributes: true, attributeFilter: ['hidden'] });
