// Admin: whether webhooks (endpoints and webhook bots) may reach private addresses
// (/api/admin/webhooks/private-addresses), under the Webhooks view's "Advanced": it is
// one switch for the whole server, so a change is asked for with a button and then
// confirmed (a stray click changes nothing). The status says who last changed it and
// when; while the server's WEBHOOK_ALLOW_PRIVATE decides, there is no button, only why.
// A change applies to registrations and deliveries at once.

import { api, dateTime } from './dom.js';
import { sentence } from './field-errors.js';

const $ = (id) => document.getElementById(id);

export function privateAddressesSetting() {
  let current = null;

  function asking(open) {
    $('hook-private-confirm').hidden = !open;
    $('hook-private-change').hidden = open || current.locked;
    if (open) $('hook-private-yes').focus();
  }

  function show(s) {
    current = s;
    let text;
    if (s.locked) {
      text = s.allowed
        ? "Always allowed by the server's settings (WEBHOOK_ALLOW_PRIVATE=true): only its operator can change this."
        : "Never allowed by the server's settings (WEBHOOK_ALLOW_PRIVATE=false): only its operator can change this.";
    } else {
      text = s.allowed
        ? 'Allowed: endpoints and webhook bots may be on this server\'s own network.'
        : 'Refused: an address on this server\'s own network is refused at registration and at delivery.';
      if (s.changed_by) text += ` Changed by ${s.changed_by}, ${dateTime(s.changed_at)}.`;
    }
    $('hook-private-status').textContent = text;
    $('hook-private-change').textContent = s.allowed ? 'Refuse private addresses…' : 'Allow private addresses…';
    $('hook-private-question').textContent = s.allowed
      ? 'Refuse private addresses? Endpoints and webhook bots on this server\'s own network stop getting events (their deliveries fail) until they are allowed again.'
      : 'Allow private addresses? Every admin may then point webhooks at this server\'s own network: its loopback, link-local and private addresses, such as databases and cloud metadata services.';
    $('hook-private-yes').textContent = s.allowed ? 'Yes, refuse them' : 'Yes, allow them';
    asking(false);
  }

  async function load() {
    const res = await api('GET', '/api/admin/webhooks/private-addresses');
    if (!res.ok) { $('hook-private-error').textContent = sentence(res.error.message); return; }
    $('hook-private-error').textContent = '';
    show(res.data);
  }

  $('hook-private-change').addEventListener('click', () => asking(true));
  $('hook-private-no').addEventListener('click', () => { asking(false); $('hook-private-change').focus(); });
  $('hook-private-yes').addEventListener('click', async () => {
    $('hook-private-yes').disabled = true;
    const res = await api('PUT', '/api/admin/webhooks/private-addresses', { allowed: !current.allowed });
    $('hook-private-yes').disabled = false;
    if (!res.ok) { $('hook-private-error').textContent = sentence(res.error.message); await load(); return; }
    $('hook-private-error').textContent = '';
    show(res.data);
    $('hook-private-change').focus();
  });

  load();
  return { load };
}
