// Admin: each category's chat hours (in the desk's time zone), whether it is open now,
// and an editor for a week of one span a day plus holidays. Outside its hours a category
// takes no new customer; they are offered to leave a message instead.

import { el, api } from './dom.js';

const $ = (id) => document.getElementById(id);
const DAYS = [['mon', 'Monday'], ['tue', 'Tuesday'], ['wed', 'Wednesday'], ['thu', 'Thursday'], ['fri', 'Friday'], ['sat', 'Saturday'], ['sun', 'Sunday']];

/**
 * "Mon–Fri 09:00–17:00 · Sat 10:00–14:00" from a week of spans: days in a row with the
 * same hours make one range ("Mon–Tue, Thu–Fri" when a day between differs).
 */
export function summary(own) {
  if (!own) return 'Always open';
  const hoursOf = (d) => (own.week[d] || []).map((s) => `${s.open}–${s.close}`).join(', ');
  // Runs of consecutive days with the same hours, in week order.
  const runs = [];
  for (const [i, [d]] of DAYS.entries()) {
    const hours = hoursOf(d);
    if (!hours) continue;
    const last = runs[runs.length - 1];
    if (last && last.hours === hours && last.to === i - 1) last.to = i; else runs.push({ hours, from: i, to: i });
  }
  // Runs with the same hours together, in the order of their first day.
  const groups = new Map();
  for (const run of runs) {
    const short = (i) => DAYS[i][1].slice(0, 3);
    const days = run.from === run.to ? short(run.from) : `${short(run.from)}–${short(run.to)}`;
    groups.set(run.hours, [...(groups.get(run.hours) || []), days]);
  }
  const parts = [...groups].map(([hours, days]) => `${days.join(', ')} ${hours}`);
  const holidays = own.holidays.length ? ` · closed on ${own.holidays.length} holiday${own.holidays.length === 1 ? '' : 's'}` : '';
  return (parts.length ? parts.join(' · ') : 'Closed every day') + holidays;
}

export function hoursSection() {
  let editing = null;

  function editor(category, own, refresh) {
    const error = el('p', { class: 'form-error', role: 'alert', dataset: { testid: 'hours-error' } });
    const rows = DAYS.map(([day, name]) => {
      const span = own?.week[day]?.[0];
      const on = el('input', { type: 'checkbox', id: `h-${category.id}-${day}`, dataset: { testid: `hours-${day}-open` } });
      on.checked = own ? !!span : day !== 'sat' && day !== 'sun';
      const open = el('input', { type: 'time', value: span?.open || '09:00', 'aria-label': `${name} opens`, dataset: { testid: `hours-${day}-from` } });
      const close = el('input', { type: 'time', value: span?.close === '24:00' ? '23:59' : (span?.close || '17:00'), 'aria-label': `${name} closes`, dataset: { testid: `hours-${day}-to` } });
      return { day, on, open, close, row: el('div', { class: 'hours-day' }, on, el('label', { for: on.id }, name), open, el('span', {}, 'to'), close) };
    });
    const holidays = el('input', { id: `h-${category.id}-holidays`, value: (own?.holidays || []).join(', '), placeholder: '2026-12-25, 2027-01-01', dataset: { testid: 'hours-holidays' } });
    const save = el('button', { type: 'submit', dataset: { testid: 'hours-save' } }, 'Save hours');
    const always = el('button', { type: 'button', class: 'secondary', dataset: { testid: 'hours-always' } }, 'Always open');
    const cancel = el('button', { type: 'button', class: 'secondary' }, 'Cancel');
    const form = el('form', { class: 'hours-editor', dataset: { testid: 'hours-editor' }, novalidate: true },
      ...rows.map((r) => r.row),
      el('label', { for: holidays.id }, 'Holidays (closed all day; dates YYYY-MM-DD, separated by commas)'), holidays,
      el('div', { class: 'row' }, save, always, cancel), error);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const week = {};
      for (const r of rows) if (r.on.checked) week[r.day] = [{ open: r.open.value, close: r.close.value === '23:59' ? '24:00' : r.close.value }];
      const dates = holidays.value.split(/[\s,]+/).filter(Boolean);
      const res = await api('PUT', `/api/admin/chat-hours/${encodeURIComponent(category.id)}`, { category: category.id, week, holidays: dates });
      if (!res.ok) { error.textContent = res.error.message; return; }
      editing = null;
      refresh();
    });
    always.addEventListener('click', async () => {
      const res = await api('DELETE', `/api/admin/chat-hours/${encodeURIComponent(category.id)}`);
      if (!res.ok) { error.textContent = res.error.message; return; }
      editing = null;
      refresh();
    });
    cancel.addEventListener('click', () => { editing = null; refresh(); });
    return form;
  }

  async function render(categories) {
    if (editing) return;
    const res = await api('GET', '/api/admin/chat-hours');
    if (!res.ok) { $('hours-rows').replaceChildren(el('li', { class: 'muted' }, res.error.message)); return; }
    $('hours-zone').textContent = res.data.time_zone;
    const refresh = () => render(categories);
    $('hours-rows').replaceChildren(...categories.map((c) => {
      const own = res.data.categories.find((h) => h.category === c.id);
      const open = res.data.open_now.find((o) => o.category === c.id)?.open ?? true;
      const edit = el('button', { type: 'button', class: 'secondary', dataset: { testid: 'hours-edit' } }, 'Edit hours');
      const item = el('li', { dataset: { testid: 'hours-row', id: c.id } },
        el('strong', {}, c.name),
        el('span', { class: `pill ${open ? 'available' : 'away'}`, dataset: { testid: 'hours-state' } }, open ? 'open now' : 'closed now'),
        el('span', { class: 'muted', dataset: { testid: 'hours-summary' } }, summary(own)), edit);
      edit.addEventListener('click', () => {
        editing = c.id;
        item.append(editor(c, own, refresh));
        edit.hidden = true;
        item.querySelector('input')?.focus();
      });
      return item;
    }));
  }

  return { render };
}
