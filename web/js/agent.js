// The agent console: sign in, go available, hold up to `max_chats` chats in
// side-by-side panels, see each customer's draft before it is sent, and read
// past conversations. The hub restores open chats in agent_welcome after a
// reconnect within the grace period, so a dropped socket loses nothing.

import { el, byTestId, announce, show } from './dom.js';
import { ReconnectingSocket } from './socket.js';
import { ChatView } from './chatview.js';
import { wireLogin, currentAccount, sessionStatus, signOut } from './login.js';
import { createArchive } from './history.js';
import { beep, flashTitle } from './notify.js';

const $ = (id) => document.getElementById(id);
/** chat_id → {panel, view, name, ended, status} */
const chats = new Map();
let profile = { categories: [], max_chats: 1, available: false };
let maxLen = 2000;
let waiting = {};
let archive = null;
let openConversationWired = false;
let historyTimer = null;
let welcomed = false;

const socket = new ReconnectingSocket('/ws/agent', {
  onFrame: handle,
  onState: (state) => {
    const pill = $('conn-state');
    show(pill, true);
    // Once connected, every later attempt is a reconnect: say so, with the chats still on screen.
    pill.textContent = state === 'open' ? 'online' : welcomed && state !== 'closed' ? 'reconnecting…' : state;
    pill.className = `pill ${state === 'open' ? 'connected' : 'away'}`;
    $('availability').disabled = state !== 'open';
    if (state === 'reconnecting') {
      for (const c of chats.values()) c.view.failPending('not confirmed: connection lost');
      if (welcomed) pageNotice('Connection lost — reconnecting… Your chats stay open; customers are told you will be back.');
      checkSession();
    }
  },
  onFinalClose(code) {
    if (code === 4001) return signedOut('Your session has ended. Please sign in again.');
    signedOut(code === 4003 ? 'Your account was disabled by an administrator.' : 'You signed in from another tab or window; this one is closed.');
  },
});

let checkingSession = false;

/**
 * A socket refused at the upgrade (session expired or revoked, account disabled)
 * never opens: ask the hub why. Only its "signed out" (401/403) ends the page's
 * session; a network error or a 5xx leaves the socket retrying with the chats kept.
 */
async function checkSession() {
  if (checkingSession) return;
  checkingSession = true;
  const status = await sessionStatus();
  checkingSession = false;
  if (status.state === 'signed_out' && !socket.stopped && !socket.connected) {
    socket.stop();
    signedOut('Your session has ended. Please sign in again.');
  }
}

function pageNotice(text) {
  const bar = byTestId('page-notice');
  bar.textContent = text;
  show(bar, !!text);
}

/** The hub could not be asked whether we are signed in: say so while retrying. */
function unreachable(delay, error) {
  pageNotice(`Cannot reach the hub (${error?.message || 'no answer'}); trying again in ${Math.ceil(delay / 1000)} s…`);
}

function signedOut(message) {
  show($('console'), false);
  show($('login'), true);
  for (const id of ['availability', 'sign-out', 'conn-state']) show($(id), false);
  $('who').textContent = '';
  pageNotice(message || '');
  $('username').focus();
}

function signedIn(account) {
  if (account.role !== 'agent') {
    signOut();
    signedOut('');
    $('login-error').textContent = 'This is an admin account; admins use the admin page (admin.html). Only agent accounts take chats.';
    return;
  }
  pageNotice('');
  show($('login'), false);
  show($('console'), true);
  show($('availability'), true);
  show($('sign-out'), true);
  $('who').textContent = account.display_name;
  welcomed = false;
  socket.start();
  archive = archive || createArchive($('history'), { mineFrom: 'agent' });
  if (!openConversationWired) {
    // A call log's "Open the chat" (call-logs.js) shows that conversation in the history.
    document.addEventListener('open-conversation', (e) => { $('history').scrollIntoView(); archive.open(e.detail); });
    openConversationWired = true;
  }
  archive.refresh();
}

function renderProfile() {
  const names = profile.categories.map((c) => c.name).join(', ') || 'no categories yet (ask an admin)';
  $('profile-text').textContent = `Categories: ${names} · Limit: ${profile.max_chats} chat${profile.max_chats === 1 ? '' : 's'} at once`;
  const button = $('availability');
  button.setAttribute('aria-pressed', String(profile.available));
  button.textContent = profile.available ? 'Available' : 'Away';
  button.title = profile.available ? 'You are taking new chats; press to go away' : 'You take no new chats; press to become available';
  renderLoad();
  renderQueue();
}

function renderLoad() {
  const active = [...chats.values()].filter((c) => !c.ended).length;
  $('load').textContent = `${active} of ${profile.max_chats} chats`;
  show($('no-chats'), chats.size === 0);
}

function renderQueue() {
  const list = $('queue-stats');
  list.replaceChildren(...profile.categories.map((c) => el('li', { class: 'pill', dataset: { testid: `queue-${c.id}` } }, `${c.name}: ${waiting[c.id] ?? 0} waiting`)));
}

function openPanel(snapshot, fresh) {
  const existing = chats.get(snapshot.chat_id);
  if (existing) return existing;
  const id = snapshot.chat_id;
  const view = new ChatView({
    label: `Message to ${snapshot.peer_name}`,
    maxLen,
    showDraft: true,
    onSend: (text, client_id) => socket.send({ type: 'message', chat_id: id, text, client_id }),
    onTyping: (active) => socket.send({ type: 'typing', chat_id: id, active }),
  });
  const status = el('span', { class: 'pill connected', dataset: { testid: 'customer-status' } }, 'connected');
  const end = el('button', { type: 'button', class: 'danger', dataset: { testid: 'end-chat' } }, 'End chat');
  const title = el('h3', { class: 'grow', dataset: { testid: 'panel-customer' } }, snapshot.peer_name);
  const panel = el('section', { class: 'panel', 'aria-label': `Chat with ${snapshot.peer_name}`, dataset: { testid: 'chat-panel', chatId: id, customer: snapshot.peer_name, videoRequest: snapshot.video_request ? 'yes' : undefined } },
    el('header', {}, title, el('span', { class: 'pill' }, snapshot.category_name || snapshot.category), status,
      el('span', { class: 'muted' }, `since ${new Date(snapshot.started_at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}`), end),
    view.root);
  const chat = { panel, view, name: snapshot.peer_name, ended: false, status, end };
  end.addEventListener('click', () => {
    if (chat.ended) { panel.remove(); chats.delete(id); renderLoad(); return; }
    socket.send({ type: 'end_chat', chat_id: id });
  });
  chats.set(id, chat);
  $('panels').append(panel);
  for (const m of snapshot.messages || []) view.addMessage(m, m.from === 'agent');
  setPeer(chat, snapshot.peer_connected !== false);
  if (fresh) {
    view.addNotice(`${snapshot.peer_name} joined from ${snapshot.category_name}.`, 'chat-started');
    // Tell without taking focus from whatever the agent is typing in.
    beep();
    flashTitle(`New chat: ${snapshot.peer_name}`);
    announce(`New chat with ${snapshot.peer_name} (${snapshot.category_name})`);
    if (!document.activeElement || document.activeElement === document.body) view.focus();
  }
  renderLoad();
  return chat;
}

function setPeer(chat, connected) {
  chat.status.textContent = connected ? 'connected' : 'disconnected';
  chat.status.className = `pill ${connected ? 'connected' : 'away'}`;
}

function endPanel(chat, text) {
  if (chat.ended) return;
  chat.ended = true;
  chat.view.addNotice(text, 'chat-ended');
  chat.view.setTyping('');
  chat.view.setDraft('');
  chat.view.setEnabled(false);
  chat.panel.classList.add('ended');
  chat.end.textContent = 'Close';
  chat.end.className = 'secondary';
  chat.end.dataset.testid = 'close-panel';
  setPeer(chat, false);
  chat.status.textContent = 'ended';
  renderLoad();
  // The archive is written a moment later; refresh the history then.
  clearTimeout(historyTimer);
  historyTimer = setTimeout(() => archive?.refresh(), 1200);
}

function handle(f) {
  const chat = f.chat_id ? chats.get(f.chat_id) : null;
  switch (f.type) {
    case 'agent_welcome': {
      maxLen = f.max_message_len;
      profile = { categories: f.categories, max_chats: f.max_chats, available: f.available };
      $('who').textContent = f.name;
      const live = new Set(f.chats.map((c) => c.chat_id));
      // After a reconnect: chats that ended meanwhile are marked; the rest catch up on missed messages.
      for (const [id, c] of chats) if (!live.has(id)) endPanel(c, 'This chat ended while you were disconnected.');
      for (const snap of f.chats) {
        const c = chats.get(snap.chat_id);
        if (c) { for (const m of snap.messages) c.view.addMessage(m, m.from === 'agent'); setPeer(c, snap.peer_connected); }
        else openPanel(snap, false);
      }
      if (welcomed) pageNotice('');
      welcomed = true;
      renderProfile();
      break;
    }
    case 'profile':
      profile = { categories: f.categories, max_chats: f.max_chats, available: f.available };
      renderProfile();
      break;
    case 'queue_stats':
      waiting = f.waiting;
      renderQueue();
      break;
    case 'chat_started':
      openPanel({ ...f, peer_connected: true, messages: [] }, true);
      break;
    case 'ack': {
      // Our own message is durable: shown with what the hub stamped on it.
      const own = chat?.view.acked(f, { from: 'agent' });
      if (own) chat.view.addMessage(own, true);
      break;
    }
    case 'message':
      if (chat) {
        chat.view.addMessage(f, f.from === 'agent');
        if (f.from === 'customer') { chat.view.setDraft(''); announce(`${chat.name}: ${f.text}`); }
      }
      break;
    case 'typing':
      if (chat && f.from === 'customer') chat.view.setTyping(f.active ? `${chat.name} is typing…` : '');
      break;
    case 'draft':
      chat?.view.setDraft(f.text);
      break;
    case 'peer_away':
      if (chat) {
        setPeer(chat, false);
        chat.view.setTyping('');
        chat.view.addNotice(`${chat.name} disconnected — they have ${Math.round(f.grace_secs)} s to come back.`, 'peer-away');
      }
      break;
    case 'peer_back':
      if (chat) { setPeer(chat, true); chat.view.addNotice(`${chat.name} is back.`, 'peer-back'); }
      break;
    case 'chat_ended':
      if (chat) {
        const text = f.ended_by === 'agent' ? 'You ended the chat.'
          : f.ended_by === 'customer' ? `${chat.name} ended the chat.`
            : f.reason === 'customer_gone' ? `${chat.name} did not come back; the chat has ended.`
              : f.reason === 'agent_gone' ? 'The chat was handed back to the queue.' : 'The chat has ended.';
        endPanel(chat, text);
      }
      break;
    case 'error':
      if (f.client_id) for (const c of chats.values()) c.view.markFailed(f.client_id, f.message);
      else pageNotice(f.message);
      break;
    case 'shutdown':
      pageNotice('The hub is restarting; reconnecting…');
      break;
  }
}

wireLogin($('login-form'), signedIn);
$('availability').addEventListener('click', () => socket.send({ type: 'set_available', available: !profile.available }));
$('sign-out').addEventListener('click', async () => {
  socket.stop();
  await signOut();
  for (const c of chats.values()) c.panel.remove();
  chats.clear();
  signedOut('You signed out.');
});

currentAccount({ onRetry: unreachable }).then((account) => (account ? signedIn(account) : signedOut('')));
