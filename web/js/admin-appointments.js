// The admin page's appointments: every representative's appointments over a
// range of days (GET /api/admin/appointments, today and the next 13 by default), each
// booked one cancellable with a second press to confirm (the customer gets the
// cancellation mail). Its own module beside admin.js.

import { el, api, show, onSecondPress } from './dom.js';

const $ = (id) => document.getElementById(id);

/** A local calendar day `days` from today, YYYY-MM-DD. */
function dayIn(days) {
  const d = new Date(Date.now() + days * 86400000);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

function cancelButton(a) {
  const button = el('button', { type: 'button', class: 'danger', dataset: { testid: 'admin-cancel-appointment' } }, 'Cancel');
  // A second press within 5 s confirms: a cancellation mails the customer.
  onSecondPress(button, 'Press again to cancel', async () => {
    button.disabled = true;
    const res = await api('POST', `/api/admin/appointments/${encodeURIComponent(a.id)}/cancel`, {});
    if (!res.ok) { $('appointments-error').textContent = res.error.message; button.disabled = false; return; }
    load();
  });
  return button;
}

async function load() {
  if ($('console').hidden) return;
  if (!$('appointments-from').value) $('appointments-from').value = dayIn(0);
  if (!$('appointments-to').value) $('appointments-to').value = dayIn(13);
  $('appointments-error').textContent = '';
  const from = encodeURIComponent($('appointments-from').value);
  const to = encodeURIComponent($('appointments-to').value);
  const answer = await api('GET', `/api/admin/appointments?from=${from}&to=${to}`);
  if (!answer.ok) { $('appointments-error').textContent = answer.error.message; return; }
  $('appointments-zone').textContent = answer.data.zone;
  // Representatives by name (display name and username), not by account id.
  const agents = await api('GET', '/api/admin/agents');
  const names = new Map(agents.ok ? agents.data.map((a) => [a.id, `${a.display_name} (${a.username})`]) : []);
  const rows = answer.data.appointments.map((a) => el('tr', { dataset: { testid: 'admin-appointment' } },
    el('td', { text: a.local_start }),
    el('td', { text: names.get(a.representative_id) ?? a.representative_id }),
    el('td', { text: `${a.name} <${a.email}>` }),
    el('td', {}, a.comment,
      a.cancel_reason ? el('p', { class: 'muted', dataset: { testid: 'admin-cancel-reason' } }, `Cancelled because: ${a.cancel_reason}`) : null),
    el('td', { dataset: { testid: 'admin-appointment-status' }, text: a.status }),
    el('td', {}, a.status === 'booked' ? cancelButton(a) : '')));
  $('appointments-body').replaceChildren(...rows);
  show($('appointments-empty'), rows.length === 0);
}

$('appointments-refresh').addEventListener('click', load);
new MutationObserver(load).observe($('console'), { attributes: true, attributeFilter: ['hidden'] });
load();
