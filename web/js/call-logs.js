// Call logs (GET /api/calls), newest first: on the admin page every video call, on the
// agent console the agent's own (the server decides which), each with its agent's name.
// Read when the console appears, on "Refresh", and every 3 s while the list is on screen
// (the page visible, and on the admin page its "Calls" view open), so a call shows up
// seconds after it ends (polling: no socket carries call logs); "Export CSV" downloads /api/calls/export. A call that grew out of a chat links to its conversation:
// "Open the chat" asks the page's archive (admin.js, agent.js) to show it, through an
// `open-conversation` event, so this module needs no handle on the archive.

import { el, api, dateTime, show } from './dom.js';

const $ = (id) => document.getElementById(id);

// The section's body, the same on both pages; each page's #calls holds only its title row.
$('calls-title').insertAdjacentHTML('afterend', `
          <a class="button secondary" id="calls-export" data-testid="calls-export" href="/api/calls/export" download="call-logs.csv">Export CSV</a>
          <button type="button" class="secondary" id="calls-refresh" data-testid="calls-refresh">Refresh</button>`);
$('calls').insertAdjacentHTML('beforeend', `
        <div class="table-wrap" tabindex="0"><table data-testid="call-logs">
          <thead><tr><th>Started</th><th>Agent</th><th>With</th><th>Length</th><th>Both connected</th><th>Camera on</th><th>Chat</th></tr></thead>
          <tbody id="calls-body"></tbody>
        </table></div>
        <p class="muted" id="calls-empty" data-testid="calls-empty">No calls yet.</p>`);

const duration = (secs) => `${Math.floor(secs / 60)}:${String(secs % 60).padStart(2, '0')}`;

function conversationCell(c) {
  if (!c.conversation_id) return el('td', { text: '—' });
  const open = el('button', { type: 'button', class: 'secondary', dataset: { testid: 'call-open-chat' } }, 'Open the chat');
  open.addEventListener('click', () => {
    document.dispatchEvent(new CustomEvent('open-conversation', { detail: c.conversation_id }));
  });
  return el('td', {}, open);
}

/** Whether the list is on screen: the console shown and, on the admin page, its view open. */
const onScreen = () => !$('console').hidden && !$('calls').closest('[hidden]');

async function load() {
  if (!onScreen()) return;
  const answer = await api('GET', '/api/calls?limit=100');
  if (!answer.ok) return;
  const rows = answer.data.items.map((c) => el('tr', { dataset: { testid: 'call-log' } },
    el('td', { text: dateTime(c.started_at) }),
    el('td', { text: c.agent_name, title: c.agent_id }),
    el('td', { text: `${c.peer_name} (${c.peer})` }),
    el('td', { text: duration(c.length_secs) }),
    el('td', { text: duration(c.connected_secs) }),
    el('td', { text: duration(c.camera_secs) }),
    conversationCell(c)));
  $('calls-body').replaceChildren(...rows);
  show($('calls-empty'), rows.length === 0);
}

/** How often the list is read again while on screen: one small query, newest 100 rows. */
const REFRESH_MS = 3000;

$('calls-refresh').addEventListener('click', load);
setInterval(() => {
  if (document.visibilityState === 'visible') load();
}, REFRESH_MS);
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') load();
});
new MutationObserver(load).observe($('console'), { attributes: true, attributeFilter: ['hidden'] });
// The admin page's "Calls" view opened.
document.addEventListener('admin-view', (e) => { if (e.detail === 'calls') load(); });
load();
