// The admin page's call logs: every video call, newest first (GET /api/calls), read
// when the console appears and on "Refresh". Its own module beside admin.js.

import { el, api, dateTime, show } from './dom.js';

const $ = (id) => document.getElementById(id);

const duration = (secs) => `${Math.floor(secs / 60)}:${String(secs % 60).padStart(2, '0')}`;

async function load() {
  if ($('console').hidden) return;
  const answer = await api('GET', '/api/calls?limit=100');
  if (!answer.ok) return;
  const rows = answer.data.items.map((c) => el('tr', { dataset: { testid: 'call-log' } },
    el('td', { text: dateTime(c.started_at) }),
    el('td', { text: c.agent_id }),
    el('td', { text: `${c.peer_name} (${c.peer})` }),
    el('td', { text: duration(c.length_secs) }),
    el('td', { text: duration(c.connected_secs) }),
    el('td', { text: duration(c.camera_secs) })));
  $('calls-body').replaceChildren(...rows);
  show($('calls-empty'), rows.length === 0);
}

$('calls-refresh').addEventListener('click', load);
new MutationObserver(load).observe($('console'), { attributes: true, attributeFilter: ['hidden'] });
load();
