// The desk's identity secret on the admin page's widget settings: whether signed-in
// customers are verified, a new secret (shown this once, for the site's server, which
// signs each user's identifier with it: docs/protocol.md, "Verified identity"), or none.

import { api } from './dom.js';

const $ = (id) => document.getElementById(id);

function showState(data) {
  $('identity-state').textContent = data.enabled
    ? `On, with a secret made ${new Date(data.created_at).toLocaleString()}. A new one stops the old one's hashes at once.`
    : 'Off: identifiers sent by sites are ignored.';
  $('identity-off').hidden = !data.enabled;
}

export async function identitySection() {
  const res = await api('GET', '/api/admin/identity-secret');
  if (res.ok) showState(res.data);
  $('identity-new').addEventListener('click', async () => {
    const made = await api('POST', '/api/admin/identity-secret');
    if (!made.ok) { $('identity-state').textContent = made.error.message; return; }
    $('identity-secret').textContent = made.data.secret;
    $('identity-secret-box').hidden = false;
    showState({ enabled: true, created_at: made.data.created_at });
  });
  $('identity-off').addEventListener('click', async () => {
    const off = await api('DELETE', '/api/admin/identity-secret');
    if (!off.ok) return;
    $('identity-secret-box').hidden = true;
    showState(off.data);
  });
}
