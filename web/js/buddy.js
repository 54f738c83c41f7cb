// The buddy list: join under a name, see who is here, invite, and chat one to
// one. The `key` from buddy_welcome is kept in localStorage so another tab (or a
// reload) is the same person. Signed-in staff are joined by the hub at once.

import { el, byTestId, announce, show, clock } from './dom.js';
import { ReconnectingSocket } from './socket.js';
import { ChatView } from './chatview.js';
import { FileAccess } from './attachments.js';
import { currentAccount } from './login.js';

const KEY = 'switchboard.buddy';
const $ = (id) => document.getElementById(id);

let identity = load(); // {name, key} of a public buddy
let staff = false;
let me = null;
const buddies = new Map();
const invitations = new Map();
let chat = null; // {chat_id, peer, peer_name, view, ended}
let maxLen = 2000;

function load() {
  try { return JSON.parse(localStorage.getItem(KEY)) || null; } catch { return null; }
}
function save() {
  if (identity) localStorage.setItem(KEY, JSON.stringify(identity));
  else localStorage.removeItem(KEY);
}

// A buddy_join sent on this connection and not answered yet, and the timer that sends it
// again when the hub asked us to wait (one at a time, and none past a reconnect).
let joining = false;
let rejoinTimer = null;

function sendJoin(send) {
  joining = true;
  send({ type: 'buddy_join', name: identity.name, key: identity.key || undefined });
}

const socket = new ReconnectingSocket('/ws/buddy', {
  onOpen(send) {
    clearTimeout(rejoinTimer);
    rejoinTimer = null;
    joining = false;
    if (!staff && identity?.name) sendJoin(send);
  },
  onFrame: handle,
  onState(state) {
    const pill = $('conn-state');
    show(pill, state !== 'closed');
    pill.textContent = state === 'open' ? 'online' : state;
    pill.className = `pill ${state === 'open' ? 'connected' : 'away'}`;
    if (state === 'reconnecting') chat?.view.failPending('not confirmed: connection lost');
  },
  onFinalClose(code) {
    if (code === 4001) pageNotice('Your session has ended. Sign in again to see your team; reload to join the public list.');
    else if (code === 4003) pageNotice('Your account was disabled by an administrator.');
    else pageNotice('This buddy list was opened elsewhere.');
  },
});

function pageNotice(text) {
  const bar = byTestId('page-notice');
  bar.textContent = text;
  show(bar, !!text);
}

const nameOf = (id) => buddies.get(id)?.name || chat?.peer_name || `#${id}`;

function renderList() {
  const list = $('buddies');
  const sorted = [...buddies.values()].sort((a, b) => (a.id === me ? -1 : b.id === me ? 1 : a.name.localeCompare(b.name)));
  list.replaceChildren(...sorted.map((b) => {
    const mine = b.id === me;
    const outgoing = [...invitations.values()].find((i) => i.from === me && i.to === b.id);
    let action = null;
    if (!mine && !outgoing && b.status === 'available' && !(chat && !chat.ended)) {
      action = el('button', { type: 'button', class: 'secondary', dataset: { testid: 'invite' }, 'aria-label': `Invite ${b.name}`, onclick: () => send({ type: 'invite', to: b.id }) }, 'Invite');
    }
    return el('li', { dataset: { testid: 'buddy', id: String(b.id), name: b.name } },
      el('span', { class: 'name' }, b.name, mine ? ' (you)' : ''),
      b.role ? el('span', { class: 'pill' }, b.role) : null,
      el('span', { class: `pill ${b.status}`, dataset: { testid: 'buddy-status' } }, b.status),
      outgoing ? el('span', { class: 'muted' }, 'invited') : null,
      action);
  }));
}

function renderInvitations() {
  const list = $('invitations');
  list.replaceChildren(...[...invitations.values()].map((i) => {
    if (i.to === me) {
      return el('li', { dataset: { testid: 'incoming-invite', id: String(i.invitation_id) } },
        el('span', { class: 'name' }, `${nameOf(i.from)} invites you to chat`),
        el('button', { type: 'button', dataset: { testid: 'accept' }, onclick: () => send({ type: 'accept', invitation_id: i.invitation_id }) }, 'Accept'),
        el('button', { type: 'button', class: 'secondary', dataset: { testid: 'decline' }, onclick: () => send({ type: 'decline', invitation_id: i.invitation_id }) }, 'Decline'));
    }
    return el('li', { dataset: { testid: 'outgoing-invite', id: String(i.invitation_id) } },
      el('span', { class: 'name' }, `You invited ${nameOf(i.to)}`),
      el('button', { type: 'button', class: 'secondary', dataset: { testid: 'cancel-invite' }, onclick: () => send({ type: 'cancel_invite', invitation_id: i.invitation_id }) }, 'Cancel invite'));
  }));
  show($('no-invitations'), invitations.size === 0);
  renderList();
}

function send(frame) {
  if (!socket.send(frame)) pageNotice('Not connected; reconnecting…');
}

function openChat({ chat_id, peer, peer_name, messages = [] }, fresh) {
  const view = new ChatView({
    label: `Message to ${peer_name}`,
    maxLen,
    onSend: (text, client_id, attachments) => socket.send({ type: 'message', chat_id, text, client_id, ...(attachments ? { attachments } : {}) }),
    onTyping: (active) => socket.send({ type: 'typing', chat_id, active }),
    // Files, as in the agent console's chats, go up with the session cookie: signed-in
    // staff only (the public roster has no account to upload with).
    files: staff ? new FileAccess({ conversation: () => chat_id }) : null,
  });
  chat = { chat_id, peer, peer_name, view, ended: false };
  $('chat-host').replaceChildren(view.root);
  $('chat-title').textContent = `Chat with ${peer_name}`;
  show($('chat-hint'), false);
  show($('end-chat'), true);
  show($('close-chat'), false);
  for (const m of messages) view.addMessage(m, m.sender === me);
  if (fresh) {
    view.addNotice(`Chat with ${peer_name} started at ${clock(Date.now())}.`, 'chat-started');
    announce(`Chat with ${peer_name} started`);
    view.focus();
  }
  renderList();
}

function endChat(text) {
  if (!chat || chat.ended) return;
  chat.ended = true;
  chat.view.addNotice(text, 'chat-ended');
  chat.view.setTyping('');
  chat.view.setEnabled(false);
  show($('end-chat'), false);
  show($('close-chat'), true);
  announce(text);
  renderList();
}

function handle(f) {
  switch (f.type) {
    case 'buddy_welcome':
      joining = false;
      me = f.you;
      maxLen = f.max_message_len;
      if (!staff) { identity = { name: f.name, key: f.key }; save(); }
      $('me').textContent = `You are ${f.name}`;
      buddies.clear();
      for (const b of f.buddies) buddies.set(b.id, b);
      invitations.clear();
      for (const i of f.invitations) invitations.set(i.invitation_id, i);
      show($('join'), false);
      show($('app'), true);
      show($('leave'), !staff);
      pageNotice('');
      if (f.chat && (!chat || chat.chat_id !== f.chat.chat_id)) openChat(f.chat, false);
      else if (f.chat) for (const m of f.chat.messages) chat.view.addMessage(m, m.sender === me);
      else if (chat && !chat.ended) endChat('The chat ended while you were away.');
      renderInvitations();
      break;
    case 'buddy_joined':
      buddies.set(f.buddy.id, f.buddy);
      renderList();
      break;
    case 'buddy_left':
      buddies.delete(f.id);
      renderList();
      break;
    case 'buddy_status':
      if (buddies.has(f.id)) buddies.get(f.id).status = f.status;
      renderList();
      break;
    case 'invited':
      invitations.set(f.invitation.invitation_id, f.invitation);
      if (f.invitation.to === me) announce(`${nameOf(f.invitation.from)} invites you to chat`);
      renderInvitations();
      break;
    case 'invitation_closed': {
      const inv = invitations.get(f.invitation_id);
      invitations.delete(f.invitation_id);
      if (inv && f.reason === 'declined' && inv.from === me) pageNotice(`${nameOf(inv.to)} declined your invitation.`);
      if (inv && f.reason === 'cancelled' && inv.to === me) pageNotice(`${nameOf(inv.from)} withdrew the invitation.`);
      if (inv && (f.reason === 'inviter_left' || f.reason === 'invitee_left')) pageNotice('An invitation closed because someone left.');
      renderInvitations();
      break;
    }
    case 'buddy_chat_started':
      pageNotice('');
      openChat(f, true);
      break;
    case 'ack':
      if (chat && f.chat_id === chat.chat_id) {
        // Our own message is durable: shown with what the hub stamped on it.
        const own = chat.view.acked(f, { from: 'buddy', sender: me });
        if (own) chat.view.addMessage(own, true);
      }
      break;
    case 'message':
      if (chat && f.chat_id === chat.chat_id) {
        chat.view.addMessage(f, f.sender === me);
        const files = f.attachments?.length ? ` (${f.attachments.length === 1 ? 'a file' : `${f.attachments.length} files`})` : '';
        if (f.sender !== me) announce(`${chat.peer_name}: ${f.text}${files}`);
      }
      break;
    case 'buddy_typing':
      if (chat && f.chat_id === chat.chat_id && f.from !== me) chat.view.setTyping(f.active ? `${chat.peer_name} is typing…` : '');
      break;
    case 'buddy_chat_ended':
      if (chat && f.chat_id === chat.chat_id) {
        endChat(f.reason === 'peer_left' ? `${chat.peer_name} left; the chat has ended.`
          : f.ended_by === me ? 'You ended the chat.' : `${chat.peer_name} ended the chat.`);
      }
      break;
    case 'error':
      if (joining && f.code === 'cluster_unavailable' && identity?.name) {
        // The cluster is restoring its data (or Redis is away): the same person joins
        // again shortly, with the same key.
        pageNotice('The hub is restoring; joining again shortly…');
        if (rejoinTimer === null) {
          rejoinTimer = setTimeout(() => {
            rejoinTimer = null;
            if (joining && socket.connected) sendJoin((m) => socket.send(m));
          }, 1000);
        }
      } else if (f.code === 'already_joined') {
        // A join sent twice on one connection: the first one stands.
      } else if (me === null) {
        joining = false;
        show($('join'), true);
        $('name-error').textContent = f.message;
        $('name').focus();
        identity = null;
        save();
      } else if (f.client_id && chat) chat.view.markFailed(f.client_id, f.message);
      else pageNotice(f.message);
      break;
    case 'shutdown':
      pageNotice('The hub is restarting; reconnecting…');
      break;
  }
}

$('join-form').addEventListener('submit', (e) => {
  e.preventDefault();
  $('name-error').textContent = '';
  const name = $('name').value.trim();
  if (!name) { $('name-error').textContent = 'Enter a name (1 to 100 characters).'; return; }
  // A stored key for a different name would make us someone else: start fresh then.
  identity = { name, key: identity?.name === name ? identity.key : undefined };
  if (socket.connected) sendJoin((m) => socket.send(m));
  else socket.start();
});
$('end-chat').addEventListener('click', () => { if (chat) send({ type: 'end_chat', chat_id: chat.chat_id }); });
$('close-chat').addEventListener('click', () => {
  chat = null;
  $('chat-host').replaceChildren();
  $('chat-title').textContent = 'No chat';
  show($('chat-hint'), true);
  show($('close-chat'), false);
  renderList();
});
$('leave').addEventListener('click', () => {
  socket.stop();
  identity = null;
  save();
  me = null;
  show($('app'), false);
  show($('leave'), false);
  show($('join'), true);
  pageNotice('You left the buddy list.');
});

(async () => {
  // Staff or public is decided by the hub's answer; a network error is asked again, not taken for "public".
  const account = await currentAccount({
    onRetry: (delay, error) => pageNotice(`Cannot reach the hub (${error?.message || 'no answer'}); trying again in ${Math.ceil(delay / 1000)} s…`),
  });
  pageNotice('');
  if (account) {
    staff = true; // the hub puts signed-in staff on the staff roster without buddy_join
    socket.start();
  } else if (identity?.name) {
    socket.start();
  } else {
    show($('join'), true);
  }
})();
