// The agent console's video room card: create a room (one open at a time), invite by
// mail and/or SMS, watch who is in it, open it, end it. Its own module beside agent.js:
// it only needs the session cookie, which the console's sign-in sets.

import { api, show } from './dom.js';

const $ = (id) => document.getElementById(id);
/** How often the room's state is refreshed while the console is visible. */
const POLL_MS = 3000;
let current = null;

function say(error, result) {
  $('room-error').textContent = error || '';
  $('room-result').textContent = result || '';
}

function liveText(room) {
  const live = room.live;
  if (!live) return 'nobody in the room';
  const who = [live.agent_present ? 'you' : null, live.visitor ? `${live.visitor}${live.visitor_present ? '' : ' (away)'}` : null]
    .filter(Boolean).join(' and ');
  return `${who || 'nobody'} in the room · call ${live.call}`;
}

function render(room) {
  current = room;
  show($('room-create'), !room);
  show($('room-open'), !!room);
  if (!room) return;
  $('room-open-title').textContent = room.title;
  $('room-live').textContent = liveText(room);
  $('room-link').href = `/room.html?room=${encodeURIComponent(room.id)}&as=agent`;
}

async function refresh() {
  if ($('console').hidden) return;
  const answer = await api('GET', '/api/rooms/current');
  if (answer.ok) render(answer.data);
  else if (answer.status === 404) render(null);
}

$('room-create').addEventListener('submit', async (event) => {
  event.preventDefault();
  const value = (id) => $(id).value.trim() || undefined;
  const answer = await api('POST', '/api/rooms', {
    title: $('room-title').value, audience: $('room-audience').value,
    phone: value('room-phone'), email: value('room-email'), password: $('room-password').value,
  });
  if (!answer.ok) return say(answer.error.message);
  say('', 'Room created. Invite your customer below.');
  render(answer.data);
});

$('room-invite').addEventListener('submit', async (event) => {
  event.preventDefault();
  if (!current) return;
  const value = (id) => $(id).value.trim() || undefined;
  say('', 'Sending…');
  const answer = await api('POST', `/api/rooms/${encodeURIComponent(current.id)}/invite`, {
    email: value('invite-email'), phone: value('invite-phone'),
  });
  if (!answer.ok) return say(answer.error.message);
  say('', `Invitation ${answer.data.code_version} sent by ${answer.data.sent.join(' and ')}. Earlier codes no longer work.`);
});

// Ending is for everyone and for good: a second press within 5 s confirms (a blocking
// confirm() would freeze the console's chats).
let endArmed = null;
$('room-end').addEventListener('click', async () => {
  if (!current) return;
  if (!endArmed) {
    $('room-end').textContent = 'End for everyone? Press again';
    endArmed = setTimeout(() => { endArmed = null; $('room-end').textContent = 'End room'; }, 5000);
    return;
  }
  clearTimeout(endArmed);
  endArmed = null;
  $('room-end').textContent = 'End room';
  const answer = await api('DELETE', `/api/rooms/${encodeURIComponent(current.id)}`);
  if (!answer.ok) return say(answer.error.message);
  say('', 'The room has ended.');
  render(null);
});

// "Video" on every chat panel: the chat's customer gets a one-click invitation in the
// chat, and the agent's room opens in a new tab.
async function offerVideo(panel, tab) {
  const answer = await api('POST', `/api/chats/${encodeURIComponent(panel.dataset.chatId)}/video`);
  if (!answer.ok) {
    tab?.close();
    say(answer.error.message);
    return null;
  }
  say('', `Video call offered to ${panel.dataset.customer}.`);
  render(answer.data);
  return `/room.html?room=${encodeURIComponent(answer.data.id)}&as=agent`;
}

/** A customer who asked for a video call gets the invitation at once; the agent a link to the room. */
async function answerCallRequest(panel) {
  if (panel.dataset.videoOffered) return;
  panel.dataset.videoOffered = 'yes';
  const url = await offerVideo(panel, null);
  if (!url) return;
  const link = document.createElement('a');
  link.href = url;
  link.target = '_blank';
  link.rel = 'noopener';
  link.dataset.testid = 'video-room-link';
  link.textContent = 'Video requested — open the room';
  panel.querySelector('header')?.append(link);
}

function addVideoButton(panel) {
  if (panel.dataset.videoRequest === 'yes') answerCallRequest(panel);
  if (panel.querySelector('[data-testid="video-button"]')) return;
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'secondary';
  button.dataset.testid = 'video-button';
  button.textContent = 'Video';
  button.addEventListener('click', async () => {
    // Opened now, within the click, so no popup blocker stops it; pointed at the room below.
    const tab = window.open('about:blank', '_blank');
    const url = await offerVideo(panel, tab);
    if (!url) return;
    if (tab) tab.location.href = url;
    else location.assign(url);
  });
  panel.querySelector('header')?.append(button);
}

new MutationObserver(() => {
  for (const panel of document.querySelectorAll('[data-testid="chat-panel"]')) addVideoButton(panel);
}).observe($('panels'), { childList: true });

setInterval(refresh, POLL_MS);
// The console appears after sign-in: look as soon as it does.
new MutationObserver(refresh).observe($('console'), { attributes: true, attributeFilter: ['hidden'] });
refresh();
