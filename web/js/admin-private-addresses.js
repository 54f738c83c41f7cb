// Admin: whether webhooks (endpoints and webhook bots) may reach private addresses
// (/api/admin/webhooks/private-addresses): a toggle the admins turn on and off, who last
// changed it and when; locked (disabled, saying why) while the server's
// WEBHOOK_ALLOW_PRIVATE decides. A change applies to registrations and deliveries at once.

import { api, dateTime } from './dom.js';

const $ = (id) => document.getElementById(id);

export function privateAddressesToggle() {
  const box = $('hook-private-toggle');

  function show(s) {
    box.checked = s.allowed;
    box.disabled = s.locked;
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
  }

  async function load() {
    const res = await api('GET', '/api/admin/webhooks/private-addresses');
    if (!res.ok) { $('hook-private-error').textContent = res.error.message; return; }
    $('hook-private-error').textContent = '';
    show(res.data);
  }

  box.addEventListener('change', async () => {
    box.disabled = true;
    const res = await api('PUT', '/api/admin/webhooks/private-addresses', { allowed: box.checked });
    box.disabled = false;
    if (!res.ok) { $('hook-private-error').textContent = res.error.message; await load(); return; }
    $('hook-private-error').textContent = '';
    show(res.data);
  });

  load();
  return { load };
}
