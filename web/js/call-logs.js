// Call logs (GET /api/calls), newest first: on the admin page every video call, on the
// agent console the agent's own (the server decides which). Read when the console
// appears and on "Refresh". A call that grew out of a chat links to its conversation:
// "Open the chat" asks the page's archive (admin.js, agent.js) to show it, through an
// `open-conversation` event, so this module needs no handle on the archive.

import { el, api, dateTime, show } from './dom.js';

const $ = (id) => document.getElementById(id);

const duration = (secs) => `${Math.floor(secs / 60)}:${String(secs % 60).padStart(2, '0')}`;

function conversationCell(c) {
  if (!c.conversation_id) return el('td', { text: '—' });
  const open = el('button', { type: 'button', class: 'secondary', dataset: { testid: 'call-open-chat' } }, 'Open the chat');
  open.addEventListener('click', () => {
    document.dispatchEvent(new CustomEvent('open-conversation', { detail: c.conversation_id }));
  });
  return el('td', {}, open);
}

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
    el('td', { text: duration(c.camera_secs) }),
    conversationCell(c)));
  $('calls-body').replaceChildren(...rows);
  show($('calls-empty'), rows.length === 0);
}

$('calls-refresh').addEventListener('click', load);
new MutationObserver(load).observe($('console'), { attributes: true, attributeFilter: ['hidden'] });
load();
