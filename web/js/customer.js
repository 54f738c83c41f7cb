// The customer page: pick a topic, give a name, wait in line, chat. The resume
// token, last seen seq and the transcript live in sessionStorage, so a reload or
// a dropped connection within the hub's grace period carries on the same chat.

import { el, api, byTestId, announce, show, clientId } from './dom.js';
import { ReconnectingSocket } from './socket.js';
import { ChatView } from './chatview.js';
import { FileAccess } from './attachments.js';
import { beep, flashTitle } from './notify.js';
import { showRating, clearRating } from './rating.js';
import { offlineDesk, deskUnavailable } from './offline-desk.js';
import { joinDetails, siteGiven } from './visitor.js';
import { showEarlierConversations } from './earlier-conversations.js';
import { transcriptOffer, askByToken } from './transcript-mail.js';

const KEY = 'switchboard.customer';
const $ = (id) => document.getElementById(id);

/** What survives a reload: {token, name, category, categoryName, chatId, peerName, chatCategoryName, lastSeq, seqsAhead, messages,
 *  firstMessage, firstMessageSent, transferred}: `transferred` while the chat waits in a topic's line after a transfer
 *  (it goes on, the same chat, with the next agent); what the customer came about (`join.message`) is sent as their
 *  first chat message once, when the chat starts; the flag keeps a reload or resume from sending it again. */
let saved = load();
let pendingJoin = null;
let chat = null;
let inChat = false;
let maxLen = 2000;
/** "Email me this transcript" of the current chat, and the socket ask waiting for its answer. */
let transcript = null;
let transcriptAnswer = null;
/** A `resume` sent on this connection and not answered yet: a `cluster_unavailable` for it
 *  (the cluster restoring its data, or the node catching up) asks for it again. */
let resuming = false;
let resumeRetry = null;

function load() {
  try { return JSON.parse(sessionStorage.getItem(KEY)) || null; } catch { return null; }
}
function save() {
  if (saved) sessionStorage.setItem(KEY, JSON.stringify(saved));
  else sessionStorage.removeItem(KEY);
  tell('session', { active: !!saved });
}

/** Tells the page around the chat (the widget's frame script) what happened. */
function tell(what, detail) {
  document.dispatchEvent(new CustomEvent(`switchboard:${what}`, { detail }));
}

/** A topic chosen in advance (the widget's `data-category`): offered once, on the first
 *  visit of a browser with no earlier conversations. */
let presetCategory = new URLSearchParams(location.search).get('category');

const socket = new ReconnectingSocket('/ws/customer', {
  onOpen(send) {
    clearTimeout(resumeRetry);
    resuming = !!saved?.token;
    if (saved?.token) send({ type: 'resume', token: saved.token, last_seq: saved.lastSeq || 0 });
    else if (pendingJoin) send(joinFrame());
  },
  onFrame: handle,
  onState(state, delay) {
    const pill = $('conn-state');
    pill.textContent = state === 'reconnecting' ? `reconnecting in ${Math.round(delay / 100) / 10}s…` : state === 'open' ? 'connected' : state;
    pill.className = `pill ${state === 'open' ? 'connected' : 'away'}`;
    if (state === 'reconnecting') chat?.failPending('not confirmed: connection lost');
  },
  onFinalClose(code) {
    if (code === 4000) pageNotice('This chat was opened in another tab or window; continue there.');
  },
});

function pageNotice(text) {
  const bar = byTestId('page-notice');
  bar.textContent = text;
  show(bar, !!text);
}

function screen(name) {
  for (const id of ['welcome', 'offline', 'join', 'session']) show($(id), id === name);
}

async function loadCategories() {
  const res = await api('GET', '/api/categories');
  const host = $('categories');
  host.replaceChildren();
  if (!res.ok) { $('categories-error').textContent = res.error.message; return; }
  // The widget offers the topics its admin chose (all when none), in their order.
  let topics = res.data;
  if (document.body.classList.contains('widget')) {
    const look = await api('GET', '/api/widget');
    const chosen = look.ok ? look.data.categories || [] : [];
    if (chosen.length) topics = chosen.map((id) => res.data.find((c) => c.id === id)).filter(Boolean);
  }
  if (topics.length === 0) host.append(el('p', {}, 'No topics are open right now. Please try again later.'));
  for (const c of topics) {
    host.append(el('button', { type: 'button', dataset: { testid: `category-${c.id}`, category: c.id }, onclick: () => chooseCategory(c) }, c.name));
  }
  const preset = res.data.find((c) => c.id === presetCategory);
  presetCategory = null;
  // A returning customer stays on the topics, their earlier conversations under them to
  // continue; only a first visit goes straight to the preset topic's form.
  const earlier = await loadEarlier(res.data);
  if (preset && !saved && !$('welcome').hidden && !earlier) chooseCategory(preset);
}

/** The topics last loaded: the earlier conversations are listed again under them when
 *  the embedding site's identity arrives (widget-frame.js). */
let lastCategories = null;

/** This browser's earlier conversations under the topics, each to continue. */
function loadEarlier(categories) {
  lastCategories = categories;
  return showEarlierConversations($('earlier'), {
    categoryName: (id) => categories.find((c) => c.id === id)?.name,
    onContinue: (c) => continueConversation(c, categories.find((x) => x.id === c.category)?.name),
  });
}

/** The customer writes into an earlier conversation: a join naming it (same id, same agent when free). */
function continueConversation(c, categoryName) {
  pendingJoin = { name: c.customer_name, category: c.category, categoryName, conversation: c.id };
  pageNotice('');
  startSession();
  if (socket.connected) socket.send(joinFrame());
  else socket.start();
}

/** A category chosen: nobody to chat with there (closed, or no agent online) is said
 *  before the customer waits, with the message form; else on to the name. */
async function chooseCategory(c) {
  const res = await api('GET', '/api/categories');
  const now = (res.ok && res.data.find((x) => x.id === c.id)) || c;
  if (deskUnavailable(now)) showOffline(now);
  else askName(now);
}

/** Nobody can chat in category `c` now (closed, or nobody online): say so, with the form. */
function showOffline(c) {
  pendingJoin = { category: c.id, categoryName: c.name };
  const notice = offlineDesk({
    category: c.id, categoryName: c.name, open: c.open !== false,
    onWait: () => askName(c),
  });
  const back = el('button', { type: 'button', class: 'secondary', dataset: { testid: 'offline-back' }, onclick: () => screen('welcome') }, 'Other topics');
  $('offline').replaceChildren(notice, el('div', { class: 'row offline-back' }, back));
  screen('offline');
  notice.querySelector('input')?.focus();
  const title = notice.querySelector('h2').textContent;
  if (c.open === false) opensAgain(notice, c.id, c.name, c.opens_at).then((line) => announce(line ? `${title} ${line}` : title));
  else announce(title);
}

/** When `at` (ms) falls on this browser's clock: "today at 09:00", "tomorrow at 09:00",
 *  "on Monday at 09:00", or further off "on 24 December at 09:00". */
function whenAgain(at) {
  const when = new Date(at);
  const time = new Intl.DateTimeFormat([], { hour: '2-digit', minute: '2-digit' }).format(when);
  const midnight = (d) => new Date(d.getFullYear(), d.getMonth(), d.getDate());
  const days = Math.round((midnight(when) - midnight(new Date())) / 86400000);
  if (days <= 0) return `today at ${time}`;
  if (days === 1) return `tomorrow at ${time}`;
  if (days < 7) return `on ${new Intl.DateTimeFormat([], { weekday: 'long' }).format(when)} at ${time}`;
  return `on ${new Intl.DateTimeFormat([], { day: 'numeric', month: 'long' }).format(when)} at ${time}`;
}

/**
 * Under a closed category's heading in `notice` (on the page already), when it opens
 * again by its chat hours: `opensAt` as /api/categories gave it, else asked for. Resolves
 * with the line's text, or '' when its hours name no opening.
 */
async function opensAgain(notice, category, name, opensAt) {
  let at = opensAt;
  if (at === undefined) {
    const res = await api('GET', '/api/categories');
    at = res.ok ? res.data.find((c) => c.id === category)?.opens_at : undefined;
  }
  if (!at || !notice.isConnected) return '';
  const text = `${name} opens again ${whenAgain(at)}.`;
  notice.querySelector('[data-testid="offline-title"]')
    .after(el('p', { class: 'opens-at', dataset: { testid: 'opens-at' } }, text));
  return text;
}

function askName(c) {
  pendingJoin = { category: c.id, categoryName: c.name };
  $('join-topic').textContent = c.name;
  $('name-error').textContent = '';
  fillFromSite();
  screen('join');
  $('name').focus();
}

/** The name and email the embedding site gave (widget), into the join form where empty. */
function fillFromSite() {
  const { name, email } = siteGiven();
  if (name && !$('name').value) $('name').value = name;
  if (email && !$('email').value) $('email').value = email;
}

function joinFrame() {
  const frame = { type: 'join', name: pendingJoin.name, category: pendingJoin.category, video: !!pendingJoin.video,
    ...joinDetails(new URLSearchParams(location.search)) };
  if (pendingJoin.message) frame.message = pendingJoin.message;
  if (pendingJoin.email) frame.email = pendingJoin.email;
  if (pendingJoin.conversation) frame.conversation = pendingJoin.conversation;
  return frame;
}

/** What the customer came about, sent as their first message once the chat has started (once per visit). */
function sendFirstMessage() {
  if (!saved?.firstMessage || saved.firstMessageSent || !chat) return;
  const text = saved.firstMessage;
  const id = clientId();
  saved.firstMessageSent = true;
  save();
  if (socket.send({ type: 'message', text, client_id: id })) chat.addPending(text, id);
}

function submitJoin(e) {
  e.preventDefault();
  const name = $('name').value.trim();
  if (!name) { $('name-error').textContent = 'Please tell us your name (1 to 100 characters).'; $('name').focus(); return; }
  // At most 1000 characters: the field's maxlength counts UTF-16 units, never fewer than the hub's characters.
  const message = $('first-message').value.trim();
  const email = $('email').value.trim();
  $('email-error').textContent = '';
  if (email && !$('email').checkValidity()) { $('email-error').textContent = 'Please enter a valid email address, or leave it empty.'; $('email').focus(); return; }
  pendingJoin = { ...pendingJoin, name, video: $('video-request').checked, message: message || undefined, email: email || undefined };
  pageNotice('');
  startSession();
  if (socket.connected) socket.send(joinFrame());
  else socket.start();
}

/** The hub says whether anyone can serve the customer's category now (`desk_status`):
 *  while nobody can, the notice and message form show above the line, and the customer
 *  keeps their place. */
function deskStatus(f) {
  const category = saved?.category || pendingJoin?.category;
  if (!category || f.category !== category || inChat) return;
  const host = $('desk-status');
  if (!deskUnavailable(f)) {
    // Someone is back: the notice goes, unless a message was just left (its confirmation stays).
    if (!host.querySelector('[data-testid="offline-sent"]:not([hidden])')) host.replaceChildren();
    show(host, host.childElementCount > 0);
    return;
  }
  const open = f.open !== false;
  const current = host.firstElementChild;
  if (current && current.dataset.open === String(open)) return;
  const categoryName = saved?.categoryName || pendingJoin?.categoryName || category;
  const notice = offlineDesk({
    category, categoryName,
    open, waiting: true, heading: 'h3', name: saved?.name || '',
    // After a transfer the transcript is on screen: the form stays folded until asked for.
    compact: !!saved?.transferred,
  });
  notice.dataset.open = String(open);
  host.replaceChildren(notice);
  show(host, true);
  const title = notice.querySelector('h3').textContent;
  if (!open) opensAgain(notice, category, categoryName, undefined).then((line) => announce(line ? `${title} ${line}` : title));
  else announce(title);
}

function startSession() {
  screen('session');
  $('desk-status').replaceChildren();
  show($('desk-status'), false);
  show($('waiting'), true);
  show($('ended'), false);
  clearRating($('ended'));
  $('place').textContent = '…';
  $('session-title').textContent = 'Waiting for an agent';
  $('leave').textContent = 'Leave';
  $('leave').disabled = false;
  show($('leave'), true);
  show($('conn-state'), true);
  $('chat-host').replaceChildren();
  $('transcript').replaceChildren();
  show($('transcript'), false);
  transcript = null;
  chat = null;
  inChat = false;
}

/** The transcript offer of the running chat: asked on the socket, mailed when it ends. */
function offerTranscript(fresh) {
  if (transcript && !fresh) return;
  transcript = transcriptOffer($('transcript'), { email: saved?.email || '', ask: askBySocket, during: true });
  if (saved?.transcriptEmail) transcript.setAsked(saved.transcriptEmail);
  show($('transcript'), true);
}

/** Asks for the transcript on the socket; resolves with `transcript_requested` or the refusal. */
function askBySocket(email) {
  if (!socket.send({ type: 'transcript', email })) {
    return Promise.resolve({ error: { code: 'offline', message: 'Not connected right now; please try again in a moment.' } });
  }
  return new Promise((resolve) => {
    transcriptAnswer = (answer) => {
      transcriptAnswer = null;
      if (answer.email && saved) { saved.transcriptEmail = answer.email; save(); }
      resolve(answer);
    };
  });
}

function ensureChat() {
  if (chat) return chat;
  chat = new ChatView({
    label: 'Your message',
    maxLen,
    onSend: (text, client_id, attachments) => socket.send({ type: 'message', text, client_id, ...(attachments ? { attachments } : {}) }),
    // Files go up with the token this page resumes with: it is what makes it this chat's customer.
    files: new FileAccess({ conversation: () => saved?.chatId, headers: () => (saved?.token ? { 'X-Customer-Token': saved.token } : {}) }),
    onDraft: (text) => { if (inChat) socket.send({ type: 'draft', text }); },
    onTyping: (active) => { if (inChat) socket.send({ type: 'typing', active }); },
    hint: saved?.draftPreview ? 'The agent can see what you type before you send it.' : '',
    peerName: () => saved?.peerName || 'Agent',
  });
  $('chat-host').replaceChildren(chat.root);
  // The agent sees drafts in a live chat only: waiting in a conversation, nobody does.
  chat.showHint(inChat);
  // An agent's line names the agent who wrote it (the chat may have been transferred since);
  // the transfer lines go back where they were said (after the message they followed).
  const notices = [...(saved?.notices || [])];
  for (const m of saved?.messages || []) {
    while (notices.length && notices[0].afterSeq < m.seq) { const n = notices.shift(); chat.addNotice(n.text, n.testid); }
    chat.addMessage(m, m.from === 'customer', { author: m.by });
  }
  for (const n of notices) chat.addNotice(n.text, n.testid);
  return chat;
}

/** Shows a line; `agentName` names the agent of a conversation waited in (no chat, so no peer yet). */
function showMessage(m, agentName) {
  const view = ensureChat();
  const author = m.from === 'agent' ? agentName || undefined : undefined;
  const fresh = view.addMessage(m, m.from === 'customer', { author });
  if (fresh && m.from === 'agent') tell('reply', { name: author || saved?.peerName || 'Agent', text: m.text });
  if (fresh && saved) {
    // Kept for a reload, in seq order (arrival order may differ); the last 200 are plenty to rebuild the screen.
    // An agent's line keeps who wrote it: after a transfer the chat goes on with someone else.
    const by = m.from === 'agent' ? author || saved.peerName || undefined : undefined;
    saved.messages = [...(saved.messages || []), { id: m.id, seq: m.seq, from: m.from, text: m.text, at: m.at, by }]
      .sort((a, b) => a.seq - b.seq).slice(-200);
  }
  if (saved) { advanceCursor(m.seq); save(); }
  if (m.from === 'agent') {
    announce(`${author || saved?.peerName || 'Agent'}: ${m.text}`);
    // A reply in a background tab: the title says so (and a short sound) until looked at.
    if (document.hidden) { flashTitle(`New reply from ${saved?.peerName || 'the agent'}`); beep(); }
  }
}

/** Longest run of seqs the cursor may skip ahead over: the hub keeps no more for a resume anyway. */
const MAX_SEQS_AHEAD = 1000;

/**
 * The resume cursor `lastSeq` is the highest seq up to which every message has
 * arrived, not the highest seen: our own message's copy can come after the
 * agent's later one, and a resume from the highest would never bring it back.
 */
function advanceCursor(seq) {
  saved.lastSeq = saved.lastSeq || 0;
  if (seq <= saved.lastSeq) return;
  const ahead = new Set(saved.seqsAhead || []);
  ahead.add(seq);
  if (ahead.size > MAX_SEQS_AHEAD) saved.lastSeq = Math.min(...ahead) - 1;
  while (ahead.has(saved.lastSeq + 1)) { saved.lastSeq += 1; ahead.delete(saved.lastSeq); }
  saved.seqsAhead = [...ahead];
}

function chatting(chatId, peerName, categoryName, startedFresh) {
  $('desk-status').replaceChildren();
  show($('desk-status'), false);
  const newChat = saved.chatId !== chatId;
  if (newChat) {
    saved.chatId = chatId;
    saved.lastSeq = 0;
    saved.seqsAhead = [];
    delete saved.transcriptEmail;
  }
  saved.peerName = peerName;
  saved.chatCategoryName = categoryName || saved.chatCategoryName;
  // The chat handed to a topic's line goes on here, with its transcript (never cleared).
  const continued = !!saved.transferred;
  delete saved.transferred;
  delete saved.waitingIn;
  save();
  inChat = true;
  tell('chatting', { peerName });
  show($('waiting'), false);
  showTitle();
  $('leave').textContent = 'End chat';
  const view = ensureChat();
  view.setEnabled(true);
  view.showHint(true);
  offerTranscript(newChat && !!transcript);
  if (startedFresh) {
    const text = continued ? `You're now chatting with ${peerName}.` : `${peerName} joined the chat.`;
    if (continued) keptNotice(text, 'transfer-joined'); else view.addNotice(text, 'chat-started');
    announce(text);
    view.focus();
  }
  sendFirstMessage();
}

function showTitle() {
  const category = saved?.chatCategoryName;
  $('session-title').textContent = `Chatting with ${saved?.peerName || 'an agent'}${category ? ` · ${category}` : ''}`;
}

/** A line about the chat (a transfer) shown now and kept for a reload, after the latest message. */
/** The bot asked for an email address: a small form in the chat sends it (`email`). */
function askEmail() {
  const view = ensureChat();
  const input = el('input', { type: 'email', required: true, maxlength: '254', autocomplete: 'email', 'aria-label': 'Your email address', dataset: { testid: 'bot-email' } });
  const form = el('form', { class: 'bot-email', dataset: { testid: 'bot-email-form' } }, input,
    el('button', { type: 'submit', dataset: { testid: 'bot-email-send' } }, 'Send'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (!input.checkValidity()) { input.reportValidity(); return; }
    if (socket.send({ type: 'email', email: input.value.trim() })) form.replaceWith(el('span', {}, 'Thank you.'));
  });
  view.addNotice('Please leave your email address:', 'email-asked');
  view.transcript.append(el('li', { class: 'notice' }, form));
  input.focus();
}

function keptNotice(text, testid) {
  ensureChat().addNotice(text, testid);
  if (!saved) return;
  const afterSeq = Math.max(0, ...(saved.messages || []).map((m) => m.seq));
  saved.notices = [...(saved.notices || []), { afterSeq, text, testid }].slice(-20);
  save();
}

/**
 * The agent handed the chat on (`transferred`): to another agent (the chat goes on with
 * them), or to a topic's line (the customer waits, the transcript stays; `queued` follows,
 * and `chat_started` with the same chat id when the next agent takes it).
 */
function transferred(f) {
  if (!saved || (saved.chatId && f.chat_id !== saved.chatId)) return;
  const view = ensureChat();
  view.setTyping('');
  if (f.peer_name) {
    saved.peerName = f.peer_name;
    save();
    showTitle();
    tell('chatting', { peerName: f.peer_name });
    const text = `You're now chatting with ${f.peer_name}.`;
    keptNotice(text, 'transferred');
    announce(text);
    return;
  }
  const name = f.category_name || f.category;
  // Told again after a reload while waiting (the hub repeats it after `resumed`, which
  // gave the place): the page already says so.
  if (saved.transferred && saved.category === f.category && !inChat) return;
  inChat = false;
  // The line they wait in now: "nobody online" and the estimate are about it.
  saved.category = f.category;
  saved.categoryName = name;
  saved.chatCategoryName = name;
  saved.transferred = true;
  save();
  view.setEnabled(false);
  view.showHint(false);
  $('desk-status').replaceChildren();
  show($('desk-status'), false);
  const text = `You've been transferred to ${name}. Please wait for the next agent.`;
  keptNotice(text, 'transferred');
  announce(text);
  $('session-title').textContent = 'Waiting for the next agent';
  $('leave').textContent = 'Leave';
  $('place').textContent = '…';
  show($('waiting'), true);
}

/** "About 2–5 minutes" from the hub's estimate (whole minutes), or nothing when unknown. */
function showEstimate(estimate) {
  const node = $('estimate');
  if (!estimate) { node.textContent = ''; show(node, false); return; }
  const { low_mins: low, high_mins: high } = estimate;
  node.textContent = high <= 1 ? 'Estimated wait: under a minute'
    : low === high ? `Estimated wait: about ${high} minutes`
    : `Estimated wait: about ${Math.max(low, 1)}–${high} minutes`;
  show(node, true);
}

function waiting(place, requeued) {
  inChat = false;
  show($('waiting'), true);
  $('session-title').textContent = requeued ? 'Back in line' : saved?.transferred ? 'Waiting for the next agent' : 'Waiting for an agent';
  $('leave').textContent = 'Leave';
  $('place').textContent = place;
  announce(`You are number ${place} in line`);
  // Continuing a conversation, they write into it while they wait (`waitingIn`); what
  // they type is nobody's to see until an agent takes it.
  if (chat) { chat.setEnabled(!!saved?.waitingIn); chat.showHint(false); }
}

/**
 * Back in an earlier conversation, in line for an agent (`queued.conversation`, and again in
 * `resumed` after a reload): its latest lines in view, each agent's line named by the agent
 * who wrote it, and the composer open; what they write goes into it, and whoever takes it reads it.
 */
function waitingIn(conversation) {
  if (!saved) return;
  const already = saved.waitingIn === conversation.id;
  saved.waitingIn = conversation.id;
  save();
  const view = ensureChat();
  for (const m of conversation.messages || []) showMessage(m, m.agent_name || conversation.agent_name);
  view.setEnabled(true);
  view.showHint(false);
  if (!already) keptNotice('You’re back in your conversation. Write here while you wait: whoever takes it will see everything.', 'waiting-in-conversation');
  view.focus();
}

function finished(text) {
  inChat = false;
  saved = null;
  save();
  socket.stop();
  // Nothing more can be sent: the composer goes, and the last lines stay in view.
  if (chat) { chat.end(); chat.addNotice(text, 'chat-ended'); }
  else pageNotice(text);
  show($('waiting'), false);
  show($('ended'), true);
  // Nothing left to end, and no connection to speak of.
  $('leave').disabled = true;
  show($('leave'), false);
  show($('conn-state'), false);
  show($('confirm-end'), false);
  $('session-title').textContent = 'Chat ended';
  announce(text);
}

function handle(f) {
  switch (f.type) {
    case 'welcome':
      maxLen = f.max_message_len;
      saved = { token: f.resume_token, name: f.customer_name, category: pendingJoin?.category, categoryName: pendingJoin?.categoryName, draftPreview: !!f.draft_preview, lastSeq: 0, messages: [],
        firstMessage: pendingJoin?.message || undefined, firstMessageSent: false, email: pendingJoin?.email };
      save();
      // Joined: the next chat's form starts empty.
      $('first-message').value = '';
      break;
    case 'queued': {
      // After a transfer to a topic the hub re-queues with the original ticket (`requeued`
      // is true then too); the transfer's own line has said why already.
      const requeued = f.requeued && !saved?.transferred;
      if (requeued) ensureChat().addNotice('Your agent is no longer available — you are back in line and will be connected to the next agent.', 'requeued');
      waiting(f.place, requeued);
      if (f.conversation) waitingIn(f.conversation);
      showEstimate(f.estimate);
      // Handed to a topic they did not choose: whether anyone there can answer now (the
      // `queued` says it; a `desk_status` follows only when that changes).
      if (saved?.transferred && 'agents_online' in f) deskStatus(f);
      break;
    }
    case 'place':
      $('place').textContent = f.place;
      showEstimate(f.estimate);
      announce(`You are number ${f.place} in line`);
      break;
    // Whether anyone can serve the customer's category now (see deskStatus).
    case 'desk_status':
      deskStatus(f);
      break;
    case 'chat_started':
      if (f.continued) {
        // An earlier conversation goes on: its latest lines first, then who has it now.
        const handedOn = !!saved?.handedOn;
        if (saved) delete saved.handedOn;
        chatting(f.chat_id, f.peer_name, f.category_name, false);
        // Each agent line named by its author: the conversation may have had several.
        for (const m of f.messages || []) showMessage(m, m.agent_name);
        const text = handedOn ? `You're now chatting with ${f.peer_name}.` : `You're continuing your conversation with ${f.peer_name}.`;
        keptNotice(text, 'conversation-continued');
        announce(text);
        chat?.focus();
      } else {
        chatting(f.chat_id, f.peer_name, f.category_name, true);
      }
      break;
    case 'transferred':
      transferred(f);
      break;
    // A category's bot asks for the customer's address.
    case 'email_asked':
      askEmail();
      break;
    case 'resumed':
      resuming = false;
      saved.name = f.customer_name;
      if (f.chat) {
        chatting(f.chat.chat_id, f.chat.peer_name, f.chat.category_name, false);
        for (const m of f.chat.messages) showMessage(m);
        if (!f.chat.peer_connected) chat.addNotice(`${f.chat.peer_name} is disconnected; waiting for them to come back.`, 'peer-away');
      } else if (f.place) {
        waiting(f.place, false);
        // Waiting in a conversation: the hub gives it again, whatever this page kept.
        if (f.conversation) waitingIn(f.conversation);
      }
      break;
    case 'message':
      showMessage(f);
      break;
    case 'ack': {
      // Our own message is durable: shown with what the hub stamped on it.
      const own = chat?.acked(f, { from: 'customer' });
      if (own) showMessage(own);
      break;
    }
    case 'typing':
      if (f.from === 'agent') chat?.setTyping(f.active ? `${saved?.peerName || 'The agent'} is typing…` : '');
      break;
    case 'peer_away':
      chat?.setTyping('');
      chat?.addNotice(`${saved?.peerName || 'Your agent'} lost their connection — waiting up to ${Math.round(f.grace_secs)} s for them to come back.`, 'peer-away');
      break;
    case 'peer_back':
      chat?.addNotice(`${saved?.peerName || 'Your agent'} is back.`, 'peer-back');
      break;
    case 'chat_ended': {
      chat?.setTyping('');
      if (f.reason === 'agent_gone') {
        chat?.addNotice(`${saved?.peerName || 'Your agent'} has left.`, 'agent-gone');
        // The next agent takes this conversation on (a continued `chat_started`).
        if (saved) { saved.handedOn = true; save(); }
        break; // a `queued` with requeued=true follows
      }
      const who = f.ended_by === 'agent' ? `${saved?.peerName || 'The agent'} ended the chat.`
        : f.ended_by === 'customer' ? 'You ended the chat.'
          : f.reason === 'shutdown' ? 'The service is restarting; the chat has ended.' : 'The chat has ended.';
      finished(who);
      if (f.rating) showRating($('ended'), f.rating);
      // After the chat, the transcript is asked for with the chat's rating token.
      if (transcript) transcript.setMode(f.rating ? askByToken(f.rating.token) : null, false);
      break;
    }
    case 'transcript_requested':
      transcriptAnswer?.({ email: f.email, already: f.already });
      break;
    case 'removed':
      finished(f.message || 'You left the queue.');
      break;
    case 'error':
      onError(f);
      break;
    case 'shutdown':
      pageNotice('The service is restarting; we will reconnect you.');
      break;
    // ---- rooms and 1-to-1 video ----
    case 'video_invite':
      ensureChat().addNotice(el('span', {}, `${saved?.peerName || 'Your agent'} invites you to a video call. `,
        el('a', { href: f.link, target: '_blank', rel: 'noopener', dataset: { testid: 'video-join' } }, 'Join the video call')), 'video-invite');
      announce('Your agent invites you to a video call');
      break;
  }
}

const TRANSCRIPT_REFUSALS = ['invalid_email', 'email_required', 'too_many_transcripts', 'not_in_chat', 'archive_unavailable'];

function onError(f) {
  if (transcriptAnswer && TRANSCRIPT_REFUSALS.includes(f.code)) {
    transcriptAnswer({ error: f });
    return;
  }
  if (f.code === 'invalid_email' && !saved && pendingJoin) {
    screen('join');
    $('email-error').textContent = f.message;
    $('email').focus();
    return;
  }
  // The resume could not be looked up or decided yet; the connection stays open: ask again.
  if (f.code === 'cluster_unavailable' && resuming && !f.client_id) {
    clearTimeout(resumeRetry);
    resumeRetry = setTimeout(() => {
      if (resuming && saved?.token) socket.send({ type: 'resume', token: saved.token, last_seq: saved.lastSeq || 0 });
    }, 500 + Math.random() * 500);
    return;
  }
  if (f.code === 'resume_expired') {
    resuming = false;
    saved = null;
    save();
    socket.stop();
    chat = null;
    $('chat-host').replaceChildren();
    pageNotice('Your previous chat has ended. You can start a new one.');
    screen('welcome');
    return;
  }
  // An earlier conversation that cannot be continued (not this browser's, open elsewhere):
  // back to the topics, saying why.
  if (pendingJoin?.conversation && !saved && ['unknown_conversation', 'already_live', 'continue_unavailable'].includes(f.code)) {
    pendingJoin = null;
    socket.stop();
    pageNotice(f.message);
    screen('welcome');
    loadCategories();
    return;
  }
  // The category closed between the list and the join: the offline path, as if listed closed.
  if (f.code === 'category_closed' && pendingJoin && !saved) {
    showOffline({ id: pendingJoin.category, name: pendingJoin.categoryName, open: false, agents_online: false });
    return;
  }
  if (f.code === 'invalid_name' || f.code === 'unknown_category' || (!saved && pendingJoin)) {
    screen('join');
    $('name-error').textContent = f.message;
    $('name').focus();
    return;
  }
  if (f.client_id && chat) chat.markFailed(f.client_id, f.message);
  else pageNotice(f.message);
}

// The site's identity arrived: its conversations join the list, its name and email the form.
// (The join form also reads them each time it opens: whichever comes first.)
document.addEventListener('switchboard:identity', () => {
  fillFromSite();
  if (lastCategories) loadEarlier(lastCategories);
});

$('join-form').addEventListener('submit', submitJoin);
$('join-back').addEventListener('click', () => screen('welcome'));
// Ending a chat (or leaving the line) cannot be undone: it asks first, inline (a blocking
// confirm() would freeze the page and its messages).
$('leave').addEventListener('click', () => {
  $('confirm-end-question').textContent = inChat ? 'End this chat? You can come back to it later from this page.' : 'Leave the line? You will lose your place.';
  $('confirm-end-yes').textContent = inChat ? 'End chat' : 'Leave the line';
  show($('confirm-end'), true);
  $('confirm-end-no').focus();
});
$('confirm-end-no').addEventListener('click', () => { show($('confirm-end'), false); $('leave').focus(); });
$('confirm-end-yes').addEventListener('click', () => {
  show($('confirm-end'), false);
  if (!socket.send({ type: 'leave' })) finished('You left.');
});
$('again').addEventListener('click', () => { pageNotice(''); clearRating($('ended')); screen('welcome'); loadCategories(); });

loadCategories();
tell('session', { active: !!saved });
if (saved?.token) {
  // A reload or a new visit within the grace period: show what we had, then resume.
  startSession();
  if (saved.chatId) ensureChat().setEnabled(false);
  socket.start();
}
