// Admin: webhooks (/api/admin/webhooks): register an endpoint with its address and the
// events it wants; its signing secret is shown this once with a copy button; the list
// shows each endpoint's events, whether it is enabled (and why the hub disabled it) and
// its last delivery; edit (its address and events, in the same form; its secret stays),
// enable, disable, delete (second press); an endpoint's delivery log
// with "Send again". An endpoint the hub disabled after failing is named above the list
// and counted on the view's link, so the admin sees it without opening its log. The form
// checks an address is given before sending, and shows a refusal at its field. Under
// "Advanced", whether private addresses are allowed (admin-private-addresses.js).

import { el, api, onSecondPress, dateTime, copyOrSelect } from './dom.js';
import { showFieldErrors, problemOf, refusalAt, clearFieldErrors } from './field-errors.js';
import { privateAddressesSetting } from './admin-private-addresses.js';

const $ = (id) => document.getElementById(id);
const EVENT_TEXT = {
  'conversation.created': 'Conversation created',
  'conversation.assigned': 'Assigned',
  'conversation.transferred': 'Transferred',
  'conversation.status_changed': 'Status changed',
  'message.created': 'Message',
  'note.created': 'Internal note',
  'rating.given': 'Rating given',
  'offline_message.created': 'Offline message',
  'appointment.booked': 'Appointment booked',
  'appointment.rescheduled': 'Appointment rescheduled',
  'appointment.cancelled': 'Appointment cancelled',
};
const STATUS_TEXT = { pending: 'Pending', delivered: 'Delivered', dying: 'Given up', dead: 'Given up' };

/** A delivery's last attempt, if it was tried. */
const lastAttempt = (d) => d.attempts[d.attempts.length - 1];

/** "Delivered 27/11/26, 08:10 (200)", or a dash when nothing was sent yet. */
function deliveryText(d) {
  if (!d) return '—';
  const a = lastAttempt(d);
  const code = a ? ` (${a.status_code ?? 'no answer'})` : '';
  return `${STATUS_TEXT[d.status] || d.status} ${dateTime(a ? a.at : d.created_at)}${code}`;
}

export function webhooksSection() {
  let open = null; // the endpoint whose log is shown
  let editing = null; // the endpoint the form edits (none: the form adds one)

  /** The form edits `h` (its address and events), or (`null`) adds a new endpoint again. */
  function editIn(h) {
    editing = h;
    $('h-error').textContent = '';
    clearFieldErrors([$('h-url'), $('h-events')]);
    // The form says which endpoint it changes (its address may be changed in it).
    $('hook-form-title').textContent = h ? `Edit the endpoint ${h.url}` : 'Add an endpoint';
    $('h-url').value = h ? h.url : '';
    for (const box of document.querySelectorAll('input[name="h-event"]')) {
      box.checked = h ? h.events.includes(box.value) : box.value === 'conversation.created';
    }
    $('hook-create').textContent = h ? 'Save changes' : 'Add endpoint';
    $('hook-cancel-edit').hidden = !h;
    if (h) { $('hook-form').scrollIntoView({ block: 'nearest' }); $('h-url').focus(); }
  }

  function stateCell(h) {
    if (h.enabled) return el('td', { dataset: { testid: 'hook-state', label: 'State' } }, 'Enabled');
    const why = h.disabled_reason ? `Disabled by the hub: ${h.disabled_reason}` : 'Disabled';
    return el('td', { dataset: { testid: 'hook-state', label: 'State' }, class: h.disabled_reason ? 'form-error' : '' }, why);
  }

  function row(h, last) {
    const toggle = el('button', { type: 'button', class: 'secondary', dataset: { testid: 'hook-toggle' } },
      h.enabled ? 'Disable' : 'Enable');
    toggle.addEventListener('click', async () => {
      const res = await api('PATCH', `/api/admin/webhooks/${encodeURIComponent(h.id)}`, { enabled: !h.enabled });
      if (!res.ok) { $('hook-list-error').textContent = res.error.message; return; }
      await load();
      // The list was drawn again: the keyboard stays on this endpoint's button.
      $('hook-rows').querySelector(`tr[data-hook-id="${CSS.escape(h.id)}"] [data-testid="hook-toggle"]`)?.focus();
    });
    const logButton = el('button', { type: 'button', class: 'secondary', dataset: { testid: 'hook-open-log' },
      'aria-label': `Delivery log of ${h.url}` }, 'Log');
    // The list is read again with the log, so its "last delivery" agrees with the log.
    // The keyboard goes to the log's heading, which names the endpoint (the button is drawn again).
    logButton.addEventListener('click', async () => { open = h; await load(); $('hook-log-title').focus(); });
    const edit = el('button', { type: 'button', class: 'secondary', dataset: { testid: 'hook-edit' },
      'aria-label': `Edit ${h.url}` }, 'Edit');
    edit.addEventListener('click', () => editIn(h));
    const remove = el('button', { type: 'button', class: 'danger', dataset: { testid: 'hook-delete' } }, 'Delete');
    // Its log goes with it: ask once more.
    onSecondPress(remove, 'Confirm delete', async () => {
      const res = await api('DELETE', `/api/admin/webhooks/${encodeURIComponent(h.id)}`);
      if (!res.ok) { $('hook-list-error').textContent = res.error.message; return; }
      if (open && open.id === h.id) { open = null; $('hook-log').hidden = true; }
      if (editing && editing.id === h.id) editIn(null);
      await load();
    });
    const cells = [
      el('td', { class: 'break', dataset: { label: 'Address' } }, el('code', {}, h.url)),
      el('td', { dataset: { label: 'Events' } }, h.events.map((e) => EVENT_TEXT[e] || e).join(', ')),
      stateCell(h),
      el('td', { dataset: { testid: 'hook-last', label: 'Last delivery' } }, deliveryText(last)),
      el('td', {}, el('div', { class: 'row hook-actions' }, edit, toggle, logButton, remove)),
    ];
    return el('tr', { dataset: { testid: 'hook-row', url: h.url, hookId: h.id } }, ...cells);
  }

  function showNotice(hooks) {
    const failed = hooks.filter((h) => !h.enabled && h.disabled_reason);
    const notice = $('hook-disabled');
    notice.hidden = failed.length === 0;
    notice.textContent = failed.length === 0 ? '' : `${failed.length === 1 ? 'An endpoint was' : `${failed.length} endpoints were`} disabled after failing again and again: ${
      failed.map((h) => h.url).join(', ')}. ${failed.length === 1 ? 'Its' : 'Their'} events wait: fix the receiver, then press Enable to send them.`;
    const count = $('hook-nav-count');
    count.textContent = failed.length ? String(failed.length) : '';
    count.dataset.count = String(failed.length);
  }

  async function load() {
    const res = await api('GET', '/api/admin/webhooks');
    if (!res.ok) { $('hook-list-error').textContent = res.error.message; return; }
    $('hook-list-error').textContent = '';
    // Each endpoint's newest delivery, for the list's "last delivery".
    const lasts = await Promise.all(res.data.map((h) =>
      api('GET', `/api/admin/webhooks/${encodeURIComponent(h.id)}/deliveries?limit=1`)
        .then((r) => (r.ok ? r.data[0] : undefined))));
    $('hook-rows').replaceChildren(...res.data.map((h, i) => row(h, lasts[i])));
    $('hook-empty').hidden = res.data.length > 0;
    showNotice(res.data);
    if (open) {
      const still = res.data.find((h) => h.id === open.id);
      if (still) await showLog(still); else { open = null; $('hook-log').hidden = true; }
    }
  }

  function logRow(h, d) {
    const a = lastAttempt(d);
    const again = el('button', { type: 'button', class: 'secondary', dataset: { testid: 'hook-send-again' } }, 'Send again');
    again.addEventListener('click', async () => {
      again.disabled = true;
      const res = await api('POST',
        `/api/admin/webhooks/${encodeURIComponent(h.id)}/deliveries/${encodeURIComponent(d.id)}/redeliver`);
      again.disabled = false;
      if (!res.ok) { $('hook-log-error').textContent = res.error.message; return; }
      $('hook-log-error').textContent = '';
      await load();
    });
    const tries = d.attempts.length > 1 ? ` after ${d.attempts.length} tries` : '';
    const cells = [
      el('td', { dataset: { label: 'Time' } }, dateTime(a ? a.at : d.created_at)),
      el('td', { dataset: { label: 'Event' } }, EVENT_TEXT[d.event_type] || d.event_type),
      el('td', { dataset: { testid: 'hook-log-status', label: 'Status' } }, `${STATUS_TEXT[d.status] || d.status}${tries}`),
      el('td', { dataset: { label: 'HTTP' } }, a ? String(a.status_code ?? 'no answer') : '—'),
      el('td', { dataset: { label: 'Latency' } }, a ? `${a.latency_ms} ms` : '—'),
      el('td', { class: 'break', dataset: { label: 'Answer' } }, a && a.excerpt ? el('code', {}, a.excerpt) : '—'),
      el('td', {}, again),
    ];
    return el('tr', { dataset: { testid: 'hook-log-row', delivery: d.id } }, ...cells);
  }

  async function showLog(h) {
    open = h;
    $('hook-log-title').textContent = `Deliveries to ${h.url}`;
    $('hook-log').hidden = false;
    const res = await api('GET', `/api/admin/webhooks/${encodeURIComponent(h.id)}/deliveries?limit=50`);
    if (!res.ok) { $('hook-log-error').textContent = res.error.message; return; }
    $('hook-log-rows').replaceChildren(...res.data.map((d) => logRow(h, d)));
    $('hook-log-empty').hidden = res.data.length > 0;
  }

  /** Where the API's refusals of the form go. */
  const fieldOf = () => ({ invalid_url: $('h-url'), invalid_events: $('h-events') });

  $('hook-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    $('h-error').textContent = '';
    const events = [...document.querySelectorAll('input[name="h-event"]:checked')].map((c) => c.value);
    const url = $('h-url').value.trim();
    const checked = showFieldErrors([
      [$('h-url'), problemOf($('h-url'), {
        missing: 'Please enter the address to send to, such as https://crm.example.com/switchboard.',
        type: 'Please enter a whole web address, such as https://crm.example.com/switchboard.',
      })],
      [$('h-events'), events.length ? null : 'Please choose at least one event.'],
    ]);
    if (!checked) return;
    if (editing) {
      // Its secret stays: the receiver keeps checking signatures as before.
      const res = await api('PATCH', `/api/admin/webhooks/${encodeURIComponent(editing.id)}`, { url, events });
      if (!res.ok) { refusalAt(res.error, fieldOf(), $('h-error')); return; }
      editIn(null);
      await load();
      return;
    }
    const res = await api('POST', '/api/admin/webhooks', { url, events });
    if (!res.ok) { refusalAt(res.error, fieldOf(), $('h-error')); return; }
    $('hook-secret').textContent = res.data.secret;
    $('hook-copy-status').textContent = '';
    $('hook-secret-box').hidden = false;
    $('h-url').value = '';
    clearFieldErrors([$('h-url'), $('h-events')]);
    // Shown this once: the admin (and a screen reader) is taken to it, its copy button first,
    // as it appears (not after the list's read: a check of the focus meanwhile found it on
    // the form's button).
    $('hook-copy').focus();
    await load();
  });

  $('hook-copy').addEventListener('click', async () => {
    const copied = await copyOrSelect($('hook-secret'));
    $('hook-copy-status').textContent = copied ? 'Copied. It is not shown again.' : 'Selected: press Ctrl+C (⌘C) to copy it.';
  });

  $('hook-cancel-edit').addEventListener('click', () => editIn(null));
  $('hook-log-refresh').addEventListener('click', () => load());

  const privateAddresses = privateAddressesSetting();
  load();
  return { load: () => Promise.all([privateAddresses.load(), load()]) };
}
