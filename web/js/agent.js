// The agent console: sign in, go available, hold up to `max_chats` chats in an
// inbox (a list of chats with unread counts and waiting times beside the one open
// conversation), see each customer's draft before it is sent, and read past
// conversations. The hub restores open chats in agent_welcome after a reconnect
// within the grace period, so a dropped socket loses nothing.
//
// Every chat keeps its own panel (transcript, draft, composer) in #panels; only the
// open one is shown, so switching chats loses no half-typed text, and agent-rooms.js
// still finds each `[data-testid="chat-panel"]` to give it its Video button.

import { el, api, byTestId, announce, show } from './dom.js';
import { ReconnectingSocket } from './socket.js';
import { ChatView } from './chatview.js';
import { FileAccess } from './attachments.js';
import { wireLogin, currentAccount, sessionStatus, signOut } from './login.js';
import { createArchive, ratingText } from './history.js';
import { beep, flashTitle, setBaseTitle } from './notify.js';
import { attachPicker, loadCannedReplies, createMyReplies } from './canned.js';
import { createOffers } from './agent-offers.js';
import { createNotes } from './agent-notes.js';
import { createConversations } from './agent-conversations.js';
import { createCustomerPanel } from './agent-customer.js';
import { createTransfer } from './agent-transfer.js';
import { markMailedLines } from './agent-mails.js';
import { age } from './waited.js';

const $ = (id) => document.getElementById(id);
/** chat_id → {id, panel, view, name, ended, status, item, unread, ...}, in the list's order. */
const chats = new Map();
/** The chat shown in the conversation pane. */
let openId = null;
const TITLE = 'Switchboard — Agent';
const SOUND_KEY = 'switchboard.agent.sound';
const ASKED_KEY = 'switchboard.agent.notificationsAsked';
/** Chats handed to this agent: chat_id → {from_name, note, category, seq}, kept for a reload (this tab only). */
const TRANSFERS_KEY = 'switchboard.agent.transfers';
const wide = window.matchMedia('(min-width: 760px)');
let profile = { categories: [], max_chats: 1, available: false, status: 'away', away_reason: null };
let maxLen = 2000;
let waiting = {};
/** Category id → seconds its longest-waiting customer has waited. */
let longestWait = {};
let archive = null;
let openConversationWired = false;
let historyTimer = null;
let welcomed = false;
let myRepliesMade = false;
/** The signed-in agent's account id (a conversation's archive names its agent by it). */
let myAccountId = null;

const socket = new ReconnectingSocket('/ws/agent', {
  onFrame: handle,
  onState: (state) => {
    const pill = $('conn-state');
    show(pill, true);
    // Once connected, every later attempt is a reconnect: say so, with the chats still on screen.
    pill.textContent = state === 'open' ? 'online' : welcomed && state !== 'closed' ? 'reconnecting…' : state;
    pill.className = `pill ${state === 'open' ? 'connected' : 'away'}`;
    $('availability').disabled = state !== 'open';
    // Offers do not survive a dropped connection: the hub passes them on.
    if (state !== 'open') offers.clear('The connection dropped; the offers you had were passed on.');
    if (state !== 'open') transfer.disconnected();
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

/** Chat offers (categories in offer mode): cards above the inbox. */
const offers = createOffers({
  host: $('offers'),
  send: (frame) => socket.send(frame),
  alert: alertOffer,
  changed: () => updateTitle(),
  focusElsewhere: () => $('chats-title').focus(),
});

/** Internal notes on chats: for agents only. */
const customerPanel = createCustomerPanel();
const notes = createNotes({ send: (frame) => socket.send(frame), maxLen: () => maxLen });
const conversations = createConversations({
  send: (frame) => socket.send(frame), open: (c) => openAway(c),
  inMyChats: (id) => { const chat = chats.get(id); return Boolean(chat && holdsConversation(chat)); },
  maxLen: () => maxLen,
  // Hoisted: the console's attention (sound, title, notification) for a snooze that ran out.
  drawAttention: (alert) => drawAttention(alert),
  // A live chat's conversation status, as its "My chats" item says it.
  onStatus: (id, status) => {
    const chat = chats.get(id);
    if (chat && chat.conversationStatus !== status) { chat.conversationStatus = status; if (chat.item) renderItem(chat); }
  },
  // A customer live in it: "Transfer" hands it on, the header has no "Assign".
  isLive: (id) => { const chat = chats.get(id); return Boolean(chat && !chat.ended); },
  // The header's "Add note": the panel's own note field (agent-notes.js), in view.
  addNote: (id) => {
    const chat = chats.get(id);
    const field = chat?.panel.querySelector('[data-testid="note-input"]');
    if (!field) return;
    openChat(id);
    field.scrollIntoView({ block: 'nearest' });
    field.focus();
  },
  // Assigned from its header to a colleague: the panel, no longer theirs, is closed from its Close.
  assignedAway: (id) => chats.get(id)?.end,
});

/** The "Transfer" dialog (one for the page; each chat's header has the button opening it). */
const transfer = createTransfer({ send: (frame) => socket.send(frame) });

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
  for (const id of ['availability', 'availability-state', 'away-reason-label', 'busy-button', 'shortcuts-button', 'sign-out', 'conn-state', 'header-menu']) show($(id), false);
  setMenu(false);
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
  show($('availability-state'), true);
  show($('shortcuts-button'), true);
  show($('header-menu'), true);
  $('who').textContent = account.display_name;
  myAccountId = account.id;
  conversations.signedIn(account.id);
  welcomed = false;
  socket.start();
  archive = archive || createArchive($('history'), { mineFrom: 'agent' });
  if (!openConversationWired) {
    // A call log's "Open the chat" (call-logs.js) shows that conversation in the history.
    document.addEventListener('open-conversation', (e) => { $('history').scrollIntoView(); archive.open(e.detail); });
    openConversationWired = true;
  }
  loadCannedReplies();
  if (!myRepliesMade) { createMyReplies($('my-replies')); myRepliesMade = true; }
  // Every category's name, for the history's filter and rows (the agent may have left some).
  api('GET', '/api/categories').then((res) => {
    if (res.ok) archive.setLists({ categories: res.data });
    archive.refresh();
  });
}

function renderProfile() {
  conversations.setCategories(profile.categories);
  const names = profile.categories.map((c) => c.name).join(', ') || 'no categories yet (ask an admin)';
  $('profile-text').textContent = `Categories: ${names} · Limit: ${profile.max_chats} chat${profile.max_chats === 1 ? '' : 's'} at once`;
  // The button names what it does; the state is shown beside it.
  const button = $('availability');
  button.dataset.available = String(profile.available);
  button.textContent = profile.available ? 'Go away' : 'Go available';
  button.title = profile.available ? 'Take no new chats (the ones open stay open)' : 'Start taking new chats';
  const state = $('availability-state');
  const busy = profile.status === 'busy';
  state.textContent = busy
    ? 'Busy · finishing chats'
    : profile.available ? 'Available' : (profile.away_reason ? `Away · ${profile.away_reason}` : 'Away');
  state.className = `pill ${profile.available ? 'available' : busy ? 'busy' : 'away'}`;
  renderStatusControls();
  renderLoad();
  renderQueue();
}

// Going away may say why; finishing one's chats first makes sense only with chats open.
function renderStatusControls() {
  const signedIn = !$('availability').hidden;
  const open = [...chats.values()].some((c) => !c.ended);
  show($('away-reason-label'), signedIn && profile.available);
  show($('busy-button'), signedIn && profile.available && open);
}

function renderLoad() {
  renderStatusControls();
  const active = [...chats.values()].filter((c) => !c.ended).length;
  $('load').textContent = `${active} of ${profile.max_chats} chats`;
  show($('no-chats'), chats.size === 0);
  show($('no-open-chat'), !openId);
}

function renderQueue() {
  const list = $('queue-stats');
  const longest = (id) => {
    const secs = longestWait[id];
    if (!waiting[id] || secs === undefined) return '';
    return secs < 60 ? ' · longest under a minute' : ` · longest ${Math.floor(secs / 60)} min`;
  };
  list.replaceChildren(...profile.categories.map((c) => el('li', { class: 'pill', dataset: { testid: `queue-${c.id}` } }, `${c.name}: ${waiting[c.id] ?? 0} waiting${longest(c.id)}`)));
}

// ---- notifications: sound, title, desktop ----

const soundOn = () => localStorage.getItem(SOUND_KEY) !== 'off';
const notificationsSupported = () => 'Notification' in window;

function renderNotifyControls() {
  const sound = $('sound-toggle');
  sound.setAttribute('aria-pressed', String(soundOn()));
  sound.title = soundOn() ? 'A short sound for new chats and messages; press to mute' : 'Muted; press for a sound on new chats and messages';
  const button = $('notify-button');
  const state = $('notify-state');
  if (!notificationsSupported()) { show(button, false); state.textContent = ''; return; }
  const permission = Notification.permission;
  show(button, permission === 'default' && !localStorage.getItem(ASKED_KEY));
  state.textContent = permission === 'granted' ? 'Desktop notifications on'
    : permission === 'denied' ? 'Desktop notifications blocked (browser site settings)'
      : localStorage.getItem(ASKED_KEY) ? 'Desktop notifications off (browser site settings)' : '';
}

/** Asks for desktop notifications once ever (remembered), and only from a click. */
function askNotificationsOnce() {
  if (!notificationsSupported() || Notification.permission !== 'default' || localStorage.getItem(ASKED_KEY)) return;
  localStorage.setItem(ASKED_KEY, String(Date.now()));
  Promise.resolve(Notification.requestPermission()).then(renderNotifyControls, renderNotifyControls);
  renderNotifyControls();
}

/** The agent is looking at the page. */
const pageSeen = () => document.visibilityState === 'visible' && document.hasFocus();
/** The agent is looking at this chat: open, on screen (not the list view of a phone), page seen. */
const chatSeen = (chat) => chat.id === openId && pageSeen() && chat.panel.offsetParent !== null;

/**
 * Sound, title and (when the page is not looked at) a desktop notification `tag`, whose
 * click brings the page forward and calls `onClick`.
 */
function drawAttention({ title, body, tag, requireInteraction = false, onClick }) {
  if (soundOn()) beep();
  flashTitle(title);
  if (!notificationsSupported() || Notification.permission !== 'granted' || pageSeen()) return;
  try {
    const note = new Notification(title, { body, tag, requireInteraction });
    note.onclick = () => { window.focus(); onClick(); note.close(); };
  } catch {
    // Some browsers only allow notifications from a service worker: sound and title still tell.
  }
}

/** Something in a chat needs the agent: the notification opens it. */
function alertAgent(chat, title, body) {
  drawAttention({ title, body, tag: `chat-${chat.id}`, onClick: () => openChat(chat.id, { focus: 'composer' }) });
}

/** A new offer: the notification stays until answered and leads to its "Accept". */
function alertOffer(offer) {
  drawAttention({
    title: `Chat offer: ${offer.name}`, body: `${offer.category}${offer.message ? ` — ${offer.message}` : ''}`,
    tag: `offer-${offer.id}`, requireInteraction: true, onClick: () => { if (offer.accept.isConnected) offer.accept.focus(); },
  });
}

function updateTitle() {
  const unread = [...chats.values()].reduce((n, c) => n + c.unread, 0);
  const offered = offers?.size || 0;
  const prefix = `${offered ? `(${offered} offer${offered === 1 ? '' : 's'}) ` : ''}${unread ? `(${unread}) ` : ''}`;
  setBaseTitle(`${prefix}${TITLE}`);
  // On a phone the way back to the list says what waits there.
  const elsewhere = [...chats.values()].filter((c) => c.id !== openId).reduce((n, c) => n + c.unread, 0);
  $('back-to-list').textContent = elsewhere ? `← All chats (${elsewhere} unread)` : '← All chats';
}

// ---- the chat list ----

/**
 * Does `chat`'s item in "My chats" stand for its conversation: live, or its customer away
 * or gone while the conversation is still this agent's (writable, its status and labels in
 * its header)? Such a conversation is that one row: the work list does not list it again.
 * One ended otherwise (resolved, transferred, handed back) is only a transcript to close.
 */
function holdsConversation(chat) {
  return !chat.ended || chat.endState === 'away' || chat.endState === 'customer left' || Boolean(chat.checking);
}

/** The conversation's status as "My chats" says it beside the chat's state (null for open). */
const STATUS_WORDS = { pending: 'Waiting on customer', snoozed: 'Snoozed', resolved: 'Resolved' };

/**
 * What a live chat's item says of whose turn it is, in the work list's words: the
 * customer "Waiting 3 min" for an answer, "answered", or the conversation's status when
 * the agent parked it ("Waiting on customer", "Snoozed").
 */
function turnText(chat) {
  if (chat.conversationStatus === 'pending' || chat.conversationStatus === 'snoozed') return STATUS_WORDS[chat.conversationStatus];
  return chat.waitingSince ? `Waiting ${age(chat.waitingSince)}` : 'answered';
}

/**
 * What an ended chat's item says: how it ended ("customer left"), and, while it still holds
 * its conversation, that conversation's status as its header shows it ("· Waiting on customer").
 */
function endedText(chat) {
  const status = holdsConversation(chat) ? STATUS_WORDS[chat.conversationStatus] : null;
  return [chat.endState || 'ended', status].filter(Boolean).join(' · ');
}

function renderItem(chat) {
  const { parts } = chat;
  const open = chat.id === openId;
  chat.button.setAttribute('aria-current', open ? 'true' : 'false');
  chat.item.classList.toggle('open', open);
  chat.item.classList.toggle('ended', chat.ended);
  parts.unread.textContent = chat.unread ? String(chat.unread) : '';
  show(parts.unread, chat.unread > 0);
  const preview = chat.typing ? 'typing…' : chat.lastText ? `${chat.lastFrom === 'agent' ? `${chat.lastAuthor || 'You'}: ` : ''}${chat.lastText}` : 'No messages yet';
  parts.preview.textContent = preview;
  parts.preview.classList.toggle('typing-now', !!chat.typing);
  const state = chat.ended ? endedText(chat) : !chat.connected ? 'disconnected' : turnText(chat);
  parts.state.textContent = state;
  const parked = chat.conversationStatus === 'pending' || chat.conversationStatus === 'snoozed';
  parts.state.className = `item-state ${chat.ended ? 'ended' : !chat.connected ? 'away' : !parked && chat.waitingSince && Date.now() - chat.waitingSince > 120000 ? 'late' : ''}`;
  parts.unreadWord.textContent = chat.unread ? ' unread, ' : '';
}

function renderList() {
  for (const chat of chats.values()) renderItem(chat);
  updateTitle();
}

function listItem(chat, index) {
  const parts = {
    name: el('span', { class: 'item-name', dataset: { testid: 'chat-item-name' } }, chat.name),
    category: el('span', { class: 'pill' }, chat.category),
    unread: el('span', { class: 'unread', hidden: true, dataset: { testid: 'unread-count' } }),
    // The item's accessible name is its visible text (a screen reader reads what is seen),
    // with the unread count's word for those who cannot see the badge.
    unreadWord: el('span', { class: 'sr-only' }),
    preview: el('span', { class: 'item-preview', dataset: { testid: 'chat-item-preview' } }),
    state: el('span', { class: 'item-state', dataset: { testid: 'chat-item-waiting' } }),
  };
  const button = el('button', { type: 'button', class: 'chat-item', dataset: { testid: 'chat-list-item', chatId: chat.id, customer: chat.name } },
    el('span', { class: 'item-top' }, parts.name, parts.category, parts.unread, parts.unreadWord),
    parts.preview, parts.state);
  button.addEventListener('click', () => openChat(chat.id, { focus: wide.matches ? 'composer' : 'heading' }));
  const item = el('li', {}, button);
  Object.assign(chat, { item, button, parts });
  $('chat-list').append(item);
}

/** On a phone, the list or the conversation has the screen (the page's top card gives way to the conversation). */
function setView(view) {
  $('inbox').dataset.view = view;
  document.body.dataset.inboxView = view;
}

/**
 * Shows one chat in the conversation pane (and, on a phone, switches to it).
 * focus: 'composer' | 'item' | 'heading' | undefined (leave focus where it is).
 */
function openChat(id, { focus } = {}) {
  const chat = chats.get(id);
  if (!chat) return;
  openId = id;
  for (const c of chats.values()) show(c.panel, c.id === id);
  setView('conversation');
  const writable = !chat.ended || chat.away;
  if (focus === 'composer' && writable) chat.view.focus();
  else if (focus === 'item' || (focus === 'composer' && !writable)) chat.button.focus();
  else if (focus === 'heading') chat.title.focus();
  chat.view.scroll();
  if (chatSeen(chat)) chat.unread = 0;
  renderLoad();
  renderList();
}

/** Opens the chat `delta` places down (or up) the list, keeping the kind of focus the agent had. */
function stepChat(delta) {
  const ids = [...chats.keys()];
  if (!ids.length) return;
  const at = ids.indexOf(openId);
  const next = at < 0 ? (delta > 0 ? 0 : ids.length - 1) : (at + delta + ids.length) % ids.length;
  openNth(next);
}

function openNth(index) {
  const id = [...chats.keys()][index];
  if (!id) return;
  const inComposer = !!document.activeElement?.closest('#panels');
  openChat(id, { focus: inComposer ? 'composer' : 'item' });
}

/** The open chat counts as read once the agent looks at it. */
function markSeen() {
  const chat = chats.get(openId);
  if (chat && chat.unread && chatSeen(chat)) { chat.unread = 0; renderItem(chat); updateTitle(); }
}

/** Takes a chat off the page (no focus moves): its panel, its list item, a note kept for it. */
function dropChat(chat) {
  chat.panel.remove();
  chat.item.remove();
  chats.delete(chat.id);
  notes.forget(chat.id);
  conversations.detachControls(chat.id);
  if (openId === chat.id) openId = null;
  const stored = savedTransfers();
  if (stored[chat.id]) { delete stored[chat.id]; keepTransfers(stored); }
}

function closeChat(chat) {
  const ids = [...chats.keys()];
  const at = ids.indexOf(chat.id);
  const wasOpen = openId === chat.id;
  dropChat(chat);
  if (wasOpen) {
    const next = ids[at + 1] ?? ids[at - 1];
    if (next && chats.has(next)) openChat(next, { focus: 'item' });
    else { setView('list'); $('chats-title').focus(); }
  }
  renderLoad();
  renderList();
}

/** Who spoke last (`author`: an agent who had the chat before), and since when the customer has been waiting for an answer. */
function noteMessage(chat, m, author = null) {
  chat.lastText = m.text;
  chat.lastFrom = m.from;
  chat.lastAuthor = author;
  if (m.from === 'agent') chat.waitingSince = null;
  else if (!chat.waitingSince) chat.waitingSince = m.at;
}

/** A customer message shown for the first time: counted unread unless seen, announced once. */
function incoming(chat, m, { alert = true } = {}) {
  noteMessage(chat, m);
  chat.typing = false;
  const seen = chatSeen(chat);
  if (!seen) chat.unread += 1;
  announce(seen ? `${chat.name}: ${m.text}` : `${chat.name}, ${chat.unread} unread: ${m.text}`);
  if (alert && !seen) alertAgent(chat, `${chat.name}: new message`, m.text);
  renderItem(chat);
  updateTitle();
}

/** Chats handed to this agent (for a reload of this tab): chat_id → {from_name, note, category, seq}. */
function savedTransfers() {
  try { return JSON.parse(sessionStorage.getItem(TRANSFERS_KEY)) || {}; } catch { return {}; }
}
function keepTransfers(map) {
  if (Object.keys(map).length) sessionStorage.setItem(TRANSFERS_KEY, JSON.stringify(map));
  else sessionStorage.removeItem(TRANSFERS_KEY);
}

/**
 * A chat handed to this agent: the note of whoever handed it on, on top of the chat
 * (text only, never markup), and which agent lines came before (shown as theirs).
 */
function transferNote(transfer, categoryName) {
  const via = transfer.category ? ` via the ${categoryName(transfer.category)} queue` : '';
  return el('div', { class: 'transfer-note', role: 'note', 'aria-label': 'Transfer note', dataset: { testid: 'transfer-note' } },
    el('p', { class: 'transfer-note-head' }, el('strong', { dataset: { testid: 'transfer-from' } }, `Transferred by ${transfer.from_name}`), via),
    transfer.note
      // Focusable: a long note scrolls within its box, by keyboard too.
      ? el('p', { class: 'transfer-note-text', tabindex: '0', dataset: { testid: 'transfer-note-text' } }, transfer.note)
      : el('p', { class: 'muted transfer-note-text none', dataset: { testid: 'transfer-note-text' } }, 'No note.'));
}

/**
 * Which earlier agent said an agent line at `seq`: the hub lists who had the chat, oldest
 * first, each with the last seq said while they had it. A line past every entry (on several
 * nodes a line may arrive after the transfer) is the last one's; without the list (a page
 * kept from before it was sent), whoever handed the chat on.
 */
function earlierName(t, seq) {
  const list = t.earlier_agents || [];
  const by = list.find((e) => seq <= e.through_seq) || list[list.length - 1];
  return by?.name || t.from_name || 'Earlier agent';
}

/**
 * The author of an agent line the hub sent in `chat_started` or `agent_welcome`: whoever had
 * the chat before (the hub names each earlier agent's line, `agent_name`), or null (this
 * agent's own line, which names nobody). So a reload or a reconnect shows what the hub says,
 * whatever this page knew of the hand-over before.
 */
function namedAuthor(m) {
  if (m.from !== 'agent') return null;
  return m.agent_name || (m.via === 'bot' ? 'Bot' : null);
}

/**
 * The author of an agent line read from the archive or arriving live (a `message` frame) in
 * a chat handed to this agent: whoever had it before, or null (this agent). A line read from
 * the archive names its author (`agent_name`, as the hub tells it), the lines past the
 * archive's last hand-over being this agent's; a live one is named from the hand-over's list.
 */
function earlierAuthor(chat, m) {
  const t = chat.transfer;
  if (m.from !== 'agent') return null;
  // A bot's line is the bot's, whatever this page knows of the hand-over.
  if (m.via === 'bot') return m.agent_name || (t && earlierName(t, m.seq)) || 'Bot';
  if (!t) return null;
  const before = m.seq <= t.seq
    // Lines of the chat so far may also come as `message` frames after the chat_started:
    // anything not this agent's own (their first acknowledged line marks where theirs begin).
    // A hand-over read from a snapshot says exactly where it was.
    || (!t.exact && (chat.firstOwnSeq == null ? !(m.client_id && chat.view.pendingTexts.has(m.client_id)) : m.seq < chat.firstOwnSeq));
  // Not necessarily the agent who handed it on: the chat may have passed through several.
  return before ? m.agent_name || earlierName(t, m.seq) : null;
}

/**
 * The last hand-over of a conversation, as its archive's transfers tell (a transfer, a
 * reassignment, a bot's hand-over): who handed it on, their note, and the last seq said
 * before, so the lines through it are earlier agents' (each archived line names its own
 * author) and the lines after it the agent's now. Null when nobody handed it on (one taken
 * unassigned was nobody's before).
 */
function archivedTransfer(transfers) {
  const last = (transfers || []).filter((t) => t.from_agent_id).at(-1);
  if (!last) return null;
  return { from_name: last.from_agent_name, note: last.note || '', category: last.to_category || undefined, seq: last.after_seq, exact: true };
}

/**
 * A chat's panel from `snapshot`: the hub's (`chat_started`, `agent_welcome`: its lines named
 * as `namedAuthor` reads them) or, with `archived`, one made from the archive (its lines
 * named as `earlierAuthor` reads them).
 */
function openPanel(snapshot, fresh, { accepted = false, archived = false } = {}) {
  const existing = chats.get(snapshot.chat_id);
  // A chat this agent handed on (still listed as ended) may come back to them: a new panel.
  if (existing && existing.ended) dropChat(existing);
  else if (existing) return existing;
  const id = snapshot.chat_id;
  const view = new ChatView({
    label: `Message to ${snapshot.peer_name}`,
    maxLen,
    showDraft: true,
    // A screen reader hears the customer's name before their lines, as the page shows it.
    spokenPeer: () => snapshot.peer_name,
    onSend: (text, client_id, attachments) => socket.send({ type: 'message', chat_id: id, text, client_id, ...(attachments ? { attachments } : {}) }),
    // Files go up with the agent's session cookie.
    files: new FileAccess({ conversation: () => id }),
    // Nobody to tell while the customer is away (a chat that ended, still writable).
    onTyping: (active) => { if (!chats.get(id)?.ended) socket.send({ type: 'typing', chat_id: id, active }); },
  });
  // Handed to this agent: the note (from chat_started, kept from before a reload, or, in a
  // page opened afresh, from the welcome's snapshot: its lines run past the hand-over, so
  // the last earlier agent's last line marks where this agent's begin).
  const stored = savedTransfers();
  // A continued conversation's list is exact (the lines past it are this agent's own); one
  // read from the archive just now (`exact`) tells the whole story.
  const exactly = (t) => ({ ...t, seq: t.earlier_agents?.at(-1)?.through_seq ?? 0, exact: true });
  const given = fresh && snapshot.transfer
    ? (snapshot.continued ? exactly(snapshot.transfer) : { ...snapshot.transfer, seq: Math.max(0, ...(snapshot.messages || []).map((m) => m.seq)) })
    : (snapshot.transfer?.exact && snapshot.transfer) || stored[id] || (snapshot.transfer
      ? exactly(snapshot.transfer)
      : null);
  if (snapshot.transfer) { stored[id] = given; keepTransfers(stored); }
  const names = new Map(profile.categories.map((c) => [c.id, c.name]));
  // A chat that came through a topic's queue is that topic's now (the hub's chat_started
  // still names the topic it started in).
  const categoryId = given?.category || snapshot.category;
  const category = categoryId === snapshot.category ? snapshot.category_name || snapshot.category : names.get(categoryId) || categoryId;
  const categoryName = (cid) => (cid === categoryId ? category : cid === snapshot.category ? snapshot.category_name || cid : names.get(cid) || cid);
  // "/" at the start of the message opens the canned replies for this chat's category.
  attachPicker(view.input, view.root, { category: categoryId, customer: () => snapshot.peer_name, agent: () => $('who').textContent });
  const status = el('span', { class: 'pill connected', dataset: { testid: 'customer-status' } }, 'connected');
  const end = el('button', { type: 'button', class: 'danger', dataset: { testid: 'end-chat' } }, 'End chat');
  const handOn = el('button', { type: 'button', class: 'secondary', 'aria-haspopup': 'dialog', 'aria-label': `Transfer the chat with ${snapshot.peer_name}`, dataset: { testid: 'transfer-button' } }, 'Transfer');
  const title = el('h3', { class: 'grow', tabindex: '-1', dataset: { testid: 'panel-customer' } }, snapshot.peer_name);
  // Its conversation's status and labels, set from here as from its row (agent-conversations.js).
  const controls = conversations.attachControls(id, snapshot.peer_name);
  const panel = el('section', { class: 'panel', hidden: true, 'aria-label': `Chat with ${snapshot.peer_name}`, dataset: { testid: 'chat-panel', chatId: id, customer: snapshot.peer_name, videoRequest: snapshot.video_request ? 'yes' : undefined, transferred: given ? 'yes' : undefined } },
    el('header', {}, title, el('span', { class: 'pill', dataset: { testid: 'panel-category' } }, category), status,
      el('span', { class: 'muted panel-since' }, `since ${new Date(snapshot.started_at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}`), handOn, end),
    controls,
    given ? transferNote(given, categoryName) : null,
    view.root);
  const chat = {
    id, panel, view, title, name: snapshot.peer_name, category, ended: false, status, end, handOn, controls, transfer: given, firstOwnSeq: null,
    unread: 0, lastText: '', lastFrom: null, lastAuthor: null, waitingSince: snapshot.started_at || Date.now(), connected: true, typing: false,
    // The customer came back to an earlier conversation (reopened: it was resolved): the
    // customer panel shows its earlier turns, and this chat's wait from `queued_at`.
    continued: Boolean(snapshot.continued), reopened: Boolean(snapshot.reopened), queuedAt: snapshot.queued_at, startedAt: snapshot.started_at,
  };
  end.addEventListener('click', () => {
    if (chat.ended) { closeChat(chat); return; }
    socket.send({ type: 'end_chat', chat_id: id });
  });
  handOn.addEventListener('click', () => {
    if (chat.ended) return;
    transfer.open({
      id, name: chat.name, category, categoryId, opener: handOn,
      // The chat ended while the dialog was open: its Close button, or the list.
      fallback: () => (chats.get(id) === chat ? chat.end : $('chats-title')),
    });
  });
  // Esc leaves the message box for the chat list (keyboard users move on from there).
  view.input.addEventListener('keydown', (e) => { if (e.key === 'Escape') { e.preventDefault(); chat.button.focus(); } });
  chats.set(id, chat);
  notes.attach(chat);
  customerPanel.attach(chat);
  $('panels').append(panel);
  listItem(chat);
  const messages = [...(snapshot.messages || [])].sort((a, b) => a.seq - b.seq);
  for (const m of messages) {
    const author = archived ? earlierAuthor(chat, m) : namedAuthor(m);
    view.addMessage(m, m.from === 'agent', { author });
    noteMessage(chat, m, author);
  }
  setPeer(chat, snapshot.peer_connected !== false);
  // Back to a resolved conversation: said where its old lines end, as Chatwoot's "Conversation
  // was reopened" (a reload's snapshot says it too, its lines running past the reopen).
  if (snapshot.reopened) {
    view.addNotice(`Conversation reopened: ${snapshot.peer_name} came back to it.`, 'chat-reopened');
    // A new chat says it in its own announcement (below); a hand-over says it here.
    if (fresh && snapshot.transfer) announce(`${snapshot.peer_name} reopened their conversation`);
  }
  if (fresh && snapshot.transfer) {
    const via = snapshot.transfer.category ? ` through the ${categoryName(snapshot.transfer.category)} queue` : '';
    view.addNotice(`${snapshot.transfer.from_name} transferred this chat to you${via}.`, 'chat-transferred');
    alertAgent(chat, `Transferred chat: ${snapshot.peer_name}`, `${snapshot.transfer.from_name} transferred ${snapshot.peer_name} (${category}) to you.`);
    announce(`${snapshot.transfer.from_name} transferred the chat with ${snapshot.peer_name} (${category}) to you${snapshot.transfer.note ? `. Note: ${snapshot.transfer.note}` : ''}`);
  } else if (fresh) {
    view.addNotice(`${snapshot.peer_name} joined from ${snapshot.category_name}.`, 'chat-started');
    // Tell without taking focus from whatever the agent is typing in (an accepted offer
    // needs no alert: the agent just asked for it).
    if (!accepted) {
      const waiting = snapshot.reopened ? 'came back to a resolved conversation and is waiting for you' : 'is waiting for you';
      alertAgent(chat, `${snapshot.reopened ? 'Reopened' : 'New chat'}: ${snapshot.peer_name}`, `${snapshot.peer_name} (${category}) ${waiting}.`);
    }
    announce(snapshot.reopened ? `${snapshot.peer_name} reopened their conversation (${category})` : `New chat with ${snapshot.peer_name} (${category})`);
  }
  placeOpeningMarks(chat);
  if (accepted) {
    // The agent pressed Accept: the chat is theirs to write in now.
    openChat(id, { focus: 'composer' });
  } else if (!openId) {
    const idle = !document.activeElement || document.activeElement === document.body;
    openChat(id, { focus: fresh && idle ? 'composer' : undefined });
    // Opening the first chat shows it; on a phone the list stays until a chat is picked after a reload.
    if (!fresh && !wide.matches) setView('list');
  }
  renderLoad();
  renderList();
  return chat;
}

/**
 * A conversation of theirs opened from the work list. A live one is shown; one whose
 * customer is away opens from the archive, writable: what the agent writes waits for the
 * customer, who sees it when they come back (the hub keeps the conversation's seq going).
 */
async function openAway(c) {
  if (chats.has(c.id)) { openChat(c.id, { focus: 'composer' }); return; }
  const res = await api('GET', `/api/conversations/${encodeURIComponent(c.id)}`);
  if (!res.ok) { pageNotice(res.error.message); return; }
  // The customer came back meanwhile: their live chat is the one to show.
  if (chats.has(c.id)) { openChat(c.id, { focus: 'composer' }); return; }
  const a = res.data;
  const names = new Map(profile.categories.map((cat) => [cat.id, cat.name]));
  const chat = openPanel({
    chat_id: c.id, peer_name: a.customer_name, category: a.category, category_name: names.get(a.category) || a.category,
    started_at: a.paired_at, messages: a.messages || [], peer_connected: false,
    // Lines of agents who had it before are named theirs.
    transfer: archivedTransfer(a.transfers) || undefined,
  }, false, { archived: true });
  endPanel(chat, `${chat.name} is not here now. What you write waits for them: they see it when they come back.`, 'away');
  chat.away = true;
  // Its notes, as a live chat's (new ones are added over HTTP: agent-notes.js).
  notes.handle({ type: 'notes', chat_id: c.id, notes: a.notes || [] });
  chat.view.setEnabled(true);
  openChat(c.id, { focus: 'composer' });
  // Lines written while they are away may go to them by mail: marked with their delivery state.
  markMailedLines(chat);
}

/** Adds conversation `id`'s archived lines to `chat`'s panel (each once, by its seq). */
async function loadEarlierLines(chat, id) {
  const res = await api('GET', `/api/conversations/${encodeURIComponent(id)}`);
  if (!res.ok || !chat) return;
  // Continued on another node (the customer's): who had it before (a colleague, a bot
  // with its note) is the archive's.
  const earlier = chat.transfer ? null : archivedTransfer(res.data.transfers);
  if (earlier) {
    chat.transfer = earlier;
    chat.view.root.before(transferNote(chat.transfer, () => chat.category));
  }
  for (const m of res.data.messages || []) {
    const line = { ...m, chat_id: id };
    const author = earlierAuthor(chat, line);
    // Older than anything the panel shows: its list item keeps the latest line.
    chat.view.addMessage(line, line.from === 'agent', { author });
  }
  placeOpeningMarks(chat);
}

/**
 * A continued chat's opening notices ("Conversation reopened", "… joined") go where this
 * turn begins: before its first line written since the customer joined the line again
 * (`queued_at`: the lines they wrote while waiting are this turn's), else after every line.
 */
function placeOpeningMarks(chat) {
  if (!chat.continued) return;
  const marks = chat.view.transcript.querySelectorAll('[data-testid="chat-reopened"], [data-testid="chat-started"]');
  const lines = [...chat.view.transcript.querySelectorAll('li[data-seq]')];
  if (!marks.length || !lines.length) return;
  const lineAt = (li) => Date.parse(li.querySelector('time')?.getAttribute('datetime') || '');
  const first = chat.queuedAt ? lines.find((li) => lineAt(li) >= chat.queuedAt) : null;
  if (first) first.before(...marks);
  else lines[lines.length - 1].after(...marks);
}

function setPeer(chat, connected) {
  chat.connected = connected;
  chat.status.textContent = connected ? 'connected' : 'disconnected';
  chat.status.className = `pill ${connected ? 'connected' : 'away'}`;
  if (chat.item) renderItem(chat);
}

/** The chat is over for this agent (`state`: what its list item says instead of "ended"). */
function endPanel(chat, text, state = 'ended') {
  if (chat.ended) return;
  chat.ended = true;
  chat.endState = state;
  show(chat.handOn, false);
  chat.typing = false;
  chat.view.addNotice(text, 'chat-ended');
  chat.view.setTyping('');
  chat.view.setDraft('');
  chat.view.setEnabled(false);
  chat.panel.classList.add('ended');
  chat.end.textContent = 'Close';
  chat.end.className = 'secondary';
  chat.end.dataset.testid = 'close-panel';
  // Resolved, transferred or handed back: no longer theirs to set; a customer away (or
  // gone, still in their list) keeps its status and labels here.
  show(chat.controls, holdsConversation(chat));
  // No customer live in it now: its header offers "Assign" where "Transfer" was.
  conversations.drawHeader(chat.id);
  setPeer(chat, false);
  chat.status.textContent = state.startsWith('Transferred') ? 'transferred' : state;
  renderItem(chat);
  renderLoad();
  // The archive is written a moment later; refresh the history then.
  clearTimeout(historyTimer);
  historyTimer = setTimeout(() => archive?.refresh(), 1200);
}

/**
 * Its customer gone (`text` says so), the chat's conversation is still this agent's, open:
 * its item says "customer left", its header keeps its status and labels, and the agent may
 * still write into it (the customer sees it when they come back).
 */
function customerLeft(chat, text) {
  endPanel(chat, text, 'customer left');
  chat.view.setEnabled(true);
  chat.customerGone = true;
}

/** What the panel of a chat whose customer left says after its first sentence. */
const STAYS_OPEN = 'The conversation stays open in your list: what you write now waits for them and they see it when they come back.';

/**
 * A chat of this page's that the welcome of a new connection no longer lists, not handed
 * on from this page, ended while the agent was disconnected as the welcome says
 * (`agent_welcome.ended`, its latest ending since it started here), and is shown as the
 * agent would have seen it happen: its customer left (the conversation still theirs, open:
 * writable, one row), handed back to the queue (the agent was away past the grace period;
 * its customer may have left the line since, which the archive tells), or ended.
 */
function endedAsTold(chat, ended) {
  if (ended.reason === 'customer_gone') {
    customerLeft(chat, `${chat.name} left while you were disconnected. ${STAYS_OPEN}`);
  } else if (ended.reason === 'agent_gone') {
    endedWhileDisconnected(chat, {
      text: 'The chat was handed back to the queue while you were disconnected.', state: 'handed back', since: ended.at,
      left: `${chat.name} was handed back to the queue while you were disconnected, and left it. ${STAYS_OPEN}`,
    });
  } else {
    endPanel(chat, ended.ended_by === 'customer' ? `${chat.name} ended the chat while you were disconnected.` : 'This chat ended while you were disconnected.');
  }
}

/**
 * A chat that ended while the agent was disconnected (`text`; its item's `state`), whose
 * customer may have left it since `since` with the conversation still this agent's: the
 * archive tells (its latest closing then, for their leaving, and theirs, open). When the
 * welcome does not say how it ended (on several nodes, one kept past a day, or written
 * just after the welcome was made), `since` is the chat's start: a continued conversation's earlier turns closed before it.
 * Until the archive answers the chat's item stands for its conversation, so the work list
 * never lists it beside it, and then it is one row either way: the item ("customer left",
 * writable, as when the agent saw it happen), or, ended, the list's.
 */
async function endedWhileDisconnected(chat, { text, state = 'ended', since, left }) {
  chat.checking = true;
  endPanel(chat, text, state);
  const res = await api('GET', `/api/conversations/${encodeURIComponent(chat.id)}`);
  chat.checking = false;
  // Gone from the page meanwhile, or back live (its customer continued it).
  if (chats.get(chat.id) !== chat) return;
  const a = res.ok ? res.data : null;
  if (a && a.ended_at && a.ended_at >= since && a.reason === 'disconnect' && a.status !== 'resolved' && a.agent_id === myAccountId) {
    // Its ending told anew, as it was: its customer left.
    chat.ended = false;
    customerLeft(chat, left);
  } else {
    show(chat.controls, false);
    renderItem(chat);
  }
  conversations.load();
}

function readProfile(f) {
  return {
    categories: f.categories,
    max_chats: f.max_chats,
    available: f.available,
    status: f.status || (f.available ? 'available' : 'away'),
    away_reason: f.away_reason || null,
  };
}

function handle(f) {
  if (notes.handle(f)) return;
  if (conversations.handle(f)) return;
  const chat = f.chat_id ? chats.get(f.chat_id) : null;
  switch (f.type) {
    case 'agent_welcome': {
      maxLen = f.max_message_len;
      // A new connection: any offer shown belonged to the old one.
      offers.clear('The connection dropped; the offers you had were passed on.');
      profile = readProfile(f);
      $('who').textContent = f.name;
      const live = new Set(f.chats.map((c) => c.chat_id));
      // How each chat of theirs ended lately, its latest ending (oldest first in `ended`).
      const endings = new Map((f.ended || []).map((e) => [e.chat_id, e]));
      // After a reconnect: chats that ended meanwhile are marked (those that had ended
      // before stay as they are); the rest catch up on missed messages.
      for (const [id, c] of chats) {
        if (live.has(id) || c.ended) continue;
        // A transfer asked for just before the connection dropped went through.
        const to = transfer.sentWhileAway(id);
        const told = endings.get(id);
        const since = c.startedAt || 0;
        if (to) endPanel(c, `Transferred to ${to}.`, `Transferred to ${to}`);
        // An ending before this chat started is an earlier turn's of its conversation.
        else if (told && told.at >= since) endedAsTold(c, told);
        else {
          endedWhileDisconnected(c, {
            text: 'This chat ended while you were disconnected.', since,
            left: `${c.name} left while you were disconnected. ${STAYS_OPEN}`,
          });
        }
      }
      // Notes kept for a reload: only for the chats still running.
      const stored = savedTransfers();
      for (const id of Object.keys(stored)) if (!live.has(id)) delete stored[id];
      keepTransfers(stored);
      for (const snap of f.chats) {
        const c = chats.get(snap.chat_id);
        if (c && !c.ended) {
          // Catching up after a reconnect: what was missed counts as unread, each message once
          // (each earlier agent's line named by the hub).
          for (const m of [...snap.messages].sort((a, b) => a.seq - b.seq)) {
            const mine = m.from === 'agent';
            const author = namedAuthor(m);
            if (!c.view.addMessage(m, mine, { author })) continue;
            if (mine) noteMessage(c, m, author); else incoming(c, m, { alert: false });
          }
          setPeer(c, snap.peer_connected);
        }
        else {
          const opened = openPanel(snap, false);
          // A conversation continued on another node: the snapshot holds this turn's lines
          // only; the earlier ones are the archive's, as on `chat_started`.
          if (snap.continued) loadEarlierLines(opened, snap.chat_id);
        }
      }
      if (welcomed) pageNotice('');
      welcomed = true;
      renderProfile();
      break;
    }
    case 'profile':
      profile = readProfile(f);
      renderProfile();
      break;
    case 'queue_stats':
      waiting = f.waiting;
      longestWait = f.longest_wait_secs || {};
      renderQueue();
      break;
    case 'chat_started': {
      const accepted = offers.chatStarted(f);
      // A chat handed to this agent comes with the transcript so far (more may follow as `message` frames).
      const opened = openPanel({ ...f, peer_connected: true, messages: f.messages || [] }, true, { accepted });
      // A conversation continued on another node than ours (several nodes): its earlier
      // lines are the archive's, placed by their seq above what comes from now on.
      if (f.continued && !f.messages) loadEarlierLines(opened, f.chat_id);
      break;
    }
    case 'offer':
      offers.offer(f);
      break;
    case 'offer_ended':
      offers.ended(f);
      break;
    case 'ack': {
      // Our own message is durable: shown with what the hub stamped on it.
      const own = chat?.view.acked(f, { from: 'agent' });
      if (own) {
        // In a chat handed to this agent, their own lines start here.
        if (chat.transfer && chat.firstOwnSeq == null) chat.firstOwnSeq = own.seq;
        chat.view.addMessage(own, true);
        noteMessage(chat, own);
        renderItem(chat);
        if (chat.away || chat.customerGone) { chat.mailsPending = true; markMailedLines(chat); }
      }
      break;
    }
    case 'message':
      if (chat) {
        const mine = f.from === 'agent';
        if (!mine) chat.view.setDraft('');
        const author = earlierAuthor(chat, f);
        // Shown (and announced) once, however often a resume delivers it.
        if (!chat.view.addMessage(f, mine, { author })) break;
        if (mine) { noteMessage(chat, f, author); renderItem(chat); } else incoming(chat, f);
      }
      break;
    case 'typing':
      if (chat && f.from === 'customer') {
        chat.view.setTyping(f.active ? `${chat.name} is typing…` : '');
        chat.typing = !!f.active;
        renderItem(chat);
      }
      break;
    case 'draft':
      chat?.view.setDraft(f.text);
      break;
    case 'peer_away':
      if (chat) {
        setPeer(chat, false);
        chat.view.setTyping('');
        chat.typing = false;
        chat.view.addNotice(`${chat.name} disconnected — they have ${Math.round(f.grace_secs)} s to come back.`, 'peer-away');
      }
      break;
    case 'peer_back':
      if (chat) { setPeer(chat, true); chat.view.addNotice(`${chat.name} is back.`, 'peer-back'); }
      break;
    case 'chat_ended': {
      // Where this page asked to send it (the hub does not say), when it was a transfer.
      const to = transfer.ended(f.chat_id, f.reason);
      if (chat && f.reason === 'transferred') {
        endPanel(chat, to ? `Transferred to ${to}.` : 'The chat was transferred.', to ? `Transferred to ${to}` : 'Transferred');
        announce(to ? `The chat with ${chat.name} was transferred to ${to}` : `The chat with ${chat.name} was transferred`);
        // Out of the dialog: on the chat's Close button (the Transfer button is gone).
        if (openId === chat.id && (document.activeElement === document.body || !document.activeElement)) chat.end.focus();
      } else if (chat) {
        const text = f.ended_by === 'agent' ? 'You ended the chat.'
          : f.ended_by === 'customer' ? `${chat.name} ended the chat.`
            : f.reason === 'customer_gone' ? `${chat.name} left. ${STAYS_OPEN}`
              : f.reason === 'agent_gone' ? 'The chat was handed back to the queue.' : 'The chat has ended.';
        // Their customer gone, the conversation is open: the list and the pane say so.
        if (f.reason === 'customer_gone') customerLeft(chat, text);
        else endPanel(chat, text, f.reason === 'agent_gone' ? 'handed back' : 'ended');
      }
      break;
    }
    case 'transfer_targets':
      transfer.targets(f);
      break;
    case 'conversation_assigned': {
      // Put in a colleague's list (by this agent from its header or row, or by an admin): a
      // panel of it here is no longer theirs to write in (the list was told as well).
      const held = chats.get(f.conversation_id);
      if (held && f.from === myAccountId && f.holder !== myAccountId && held.ended && holdsConversation(held)) {
        held.away = false;
        held.customerGone = false;
        // Its ending told anew: it is the colleague's now.
        held.ended = false;
        endPanel(held, `The conversation is now with ${f.holder_name}.`, `Assigned to ${f.holder_name}`);
      }
      break;
    }
    case 'error':
      if (f.code === 'unknown_offer') offers.refused();
      else if (f.client_id) for (const c of chats.values()) c.view.markFailed(f.client_id, f.message);
      else {
        // The answer to a transfer (or to the dialog's lists) when one is awaited.
        const mine = transfer.refused(f);
        if (mine !== true) pageNotice(mine || f.message);
      }
      break;
    case 'chat_rated': {
      const text = `${chat?.name || 'The customer'} rated the chat: ${ratingText(f)}${f.comment ? ` — “${f.comment}”` : ''}`;
      if (chat) chat.view.addNotice(text, 'chat-rated');
      announce(text);
      clearTimeout(historyTimer);
      historyTimer = setTimeout(() => archive?.refresh(), 300);
      break;
    }
    case 'shutdown':
      pageNotice('The hub is restarting; reconnecting…');
      break;
  }
}

wireLogin($('login'), signedIn);
$('availability').addEventListener('click', () => {
  // Going available is when notifications start to matter: ask then (once ever).
  if (!profile.available) askNotificationsOnce();
  if (profile.available) {
    socket.send({ type: 'set_status', status: 'away', reason: $('away-reason').value || undefined });
  } else {
    socket.send({ type: 'set_status', status: 'available' });
  }
});
$('busy-button').addEventListener('click', () => socket.send({ type: 'set_status', status: 'busy' }));
$('notify-button').addEventListener('click', askNotificationsOnce);
$('sound-toggle').addEventListener('click', () => {
  localStorage.setItem(SOUND_KEY, soundOn() ? 'off' : 'on');
  renderNotifyControls();
});
$('sign-out').addEventListener('click', async () => {
  socket.stop();
  transfer.close();
  await signOut();
  for (const c of chats.values()) { c.panel.remove(); c.item.remove(); }
  keepTransfers({});
  chats.clear();
  offers.clear();
  openId = null;
  renderList();
  signedOut('You signed out.');
});
$('back-to-list').addEventListener('click', () => {
  setView('list');
  chats.get(openId)?.button.focus();
});
$('shortcuts-button').addEventListener('click', () => $('shortcuts').showModal());

// On a phone the header is one bar: availability in it, the rest (away reason, finishing
// first, appointments, signing out) behind "Menu". On a wide screen all is in the row and
// the button is not shown.
function setMenu(open) {
  $('header-menu').setAttribute('aria-expanded', String(open));
  $('app-header').classList.toggle('menu-open', open);
}
$('header-menu').addEventListener('click', () => setMenu($('header-menu').getAttribute('aria-expanded') !== 'true'));
$('app-header').addEventListener('keydown', (e) => {
  if (e.key !== 'Escape' || $('header-menu').getAttribute('aria-expanded') !== 'true') return;
  e.preventDefault();
  setMenu(false);
  $('header-menu').focus();
});
document.addEventListener('pointerdown', (e) => {
  if (!$('app-header').contains(e.target)) setMenu(false);
});

const typingIn = (node) => !!node?.closest?.('input, textarea, select, [contenteditable=""], [contenteditable="true"]');

function focusComposer() {
  const chat = chats.get(openId);
  if (!chat) { $('chat-list').querySelector('button')?.focus(); return; }
  setView('conversation');
  if (chat.ended) chat.end.focus(); else chat.view.focus();
}

/** Alt+key → the status it gives the open chat's conversation (as the work list's buttons do). */
const STATUS_KEYS = { KeyW: 'pending', KeyZ: 'snoozed', KeyR: 'resolved', KeyO: 'open' };

// Keyboard shortcuts (listed in the "Keyboard shortcuts" dialog). Alt combinations work
// everywhere, even while typing; single keys only when not typing in a field.
document.addEventListener('keydown', (e) => {
  if ($('console').hidden || e.defaultPrevented || e.isComposing || $('shortcuts').open || transfer.isOpen) return;
  if (e.altKey && !e.ctrlKey && !e.metaKey) {
    const digit = /^Digit([1-9])$/.exec(e.code);
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') { e.preventDefault(); stepChat(e.key === 'ArrowDown' ? 1 : -1); }
    else if (digit) { e.preventDefault(); openNth(Number(digit[1]) - 1); }
    else if (e.code === 'KeyC') { e.preventDefault(); focusComposer(); }
    else if (STATUS_KEYS[e.code] && openId) {
      e.preventDefault();
      conversations.setStatusOf(openId, chats.get(openId)?.name, STATUS_KEYS[e.code]);
    }
    return;
  }
  if (e.ctrlKey || e.metaKey || e.altKey || typingIn(e.target)) return;
  if (e.key === '/') { e.preventDefault(); focusComposer(); }
  else if (e.key === '?') { e.preventDefault(); $('shortcuts').showModal(); }
});

// Unread counts clear once the open chat is really looked at.
window.addEventListener('focus', markSeen);
document.addEventListener('visibilitychange', markSeen);
document.addEventListener('pointerdown', () => setTimeout(markSeen, 0));
// Waiting times move on.
setInterval(() => { for (const c of chats.values()) renderItem(c); }, 15000);
renderNotifyControls();

currentAccount({ onRetry: unreachable }).then((account) => (account ? signedIn(account) : signedOut('')));
