// The video room page (room.html?room=<id>): join with the invitation's code or the
// room's password, then a 1-to-1 WebRTC call whose signalling goes through the hub
// (/ws/room), following MDN's "perfect negotiation": the hub says who is polite.
//
// Being in a meeting is being in the call (the welcome's `call_mode` "auto"): the hub
// starts the call as soon as both are in, and again whenever one comes back, with no
// ring; the agent's page makes the offer. Only a room opened from a chat rings (`ring`):
// one side presses Call, the other Accept. The lobby says who is inside already (a
// `peek` with the room token, which takes no seat). When the meeting ends, or goes on in
// another tab, the call's view and controls give way to a card with a way back (to the
// chat, the console or the appointment).
//
// The room token is kept in sessionStorage (never in the URL), so a reload or a dropped
// connection within the grace period comes back by itself: an active call is set up
// afresh (a new peer connection, negotiated through the hub's perfect-negotiation roles)
// with no click on either side, while the other side shows "reconnecting…".
//
// Leaving is not ending: "Leave" frees our seat and shows a post-call screen with
// "Rejoin"; only the host (the agent) ends the meeting for everyone, after a confirmation.
// Camera and microphone are released (every track stopped) on leave and on end. `?as=agent` (the agent console's
// link) takes the agent's token with the signed-in session instead of a join form.
// `?relay=1` forces TURN relay (iceTransportPolicy "relay"), for testing a TURN server.

import { api, show } from './dom.js';
// HOOK(in-call view): lobby, badges and captions, network quality live in their own modules.
import { showLobby, takeStream, closeLobby, rememberOnOff, showInside } from './lobby.js';
import * as badges from './call-badges.js';
import { watchQuality, stopQuality } from './call-stats.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const roomId = params.get('room') || '';
const asAgent = params.get('as') === 'agent';
const forceRelay = params.get('relay') === '1';
const tokenKey = `room-token:${roomId}`;
/** Set while we have left this room (a reload then shows the post-call screen). */
const leftKey = `room-left:${roomId}`;
/** Where a customer came from (their appointment's page), to get a new token there. */
const returnKey = `room-return:${roomId}`;
/** Where a customer who came from a chat's invitation goes back to (the chat's page). */
const chatKey = `room-chat:${roomId}`;
/** Seconds between reports of the connection and camera to the hub during a call. */
const REPORT_MS = 5000;
/** How often the lobby asks who is inside. */
const PEEK_MS = 3000;
const ENDED = 'The meeting has ended.';

/** Close codes of /ws/room (docs/protocol.md) and what the page says for each. */
const CLOSES = {
  4000: 'This meeting was opened in another tab or on another device.',
  4400: 'Your access to this meeting is not valid. Please join again.',
  4401: 'Your access to this meeting has expired. Please join again.',
  4403: 'This access belongs to another meeting. Please join again.',
  4409: 'The seat in this meeting is taken: someone else joined with these details, or there are already two people.',
  4410: 'The meeting has ended.',
  4503: 'The call was interrupted (a server stopped). Reconnecting…',
};

let socket = null;
let token = null;
let polite = false;
let iceServers = [];
let localStream = null;
let pc = null;
let makingOffer = false;
/** Whether our tracks are in the current peer connection (see startPeer). */
let mediaAdded = false;
let ignoreOffer = false;
let reportTimer = null;
let ended = false;
/** We sent `leave` and wait for the hub's `left`; then the post-call screen. */
let leaving = false;
let retries = 0;
/** The welcome's `kind` (`agent` hosts the room) and `open_until` (appointments). */
let myKind = null;
let openUntil = null;
let peerName = '';
/** The call state as the hub last told it. */
let callState = 'idle';
/** `auto`: a meeting, whose call runs while both are in; `ring`: Call and Accept (a chat's
 *  room); null until the first welcome says which. */
let callMode = null;
/** We pressed "End for everyone". */
let endedByMe = false;
/** Frames are handled one after another (see connect). */
let inbox = Promise.resolve();
/** For tests and troubleshooting: the current peer connection. */
window.roomDebug = {
  get pc() { return pc; }, get polite() { return polite; }, get socket() { return socket; }, connectedAt: null, callStartedAt: null,
  /** Every track this page opened, to check that none stays live after leaving. */
  tracks: [],
};

function notice(text) {
  $('notice').textContent = text || '';
  show($('notice'), !!text);
}

function setRoomState(text, ok = false) {
  const pill = $('room-state');
  pill.textContent = text;
  pill.className = `pill ${ok ? 'connected' : 'away'}`;
}

function setCallState(text) {
  callState = text;
  $('call-state').textContent = text;
  badges.callState(text); // HOOK(in-call view): the caption follows the call
  // A meeting has nothing to ring, accept or hang up: Leave is the way out.
  const rings = callMode === 'ring' && !ended;
  const inCall = text === 'active' || text === 'ringing…' || text === 'reconnecting…';
  show($('hang-up'), rings && (inCall || text === 'calling…'));
  show($('start-call'), rings && !inCall && text !== 'calling…' && text !== 'incoming call');
  show($('accept-call'), rings && text === 'incoming call');
  show($('reject-call'), rings && text === 'incoming call');
}

function send(frame) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
}

/** Camera and microphone preview; the call goes on without them if refused. */
async function startPreview() {
  // HOOK(lobby): the stream chosen in the lobby (devices, camera/mic off), or one opened
  // with the remembered choices when the lobby was skipped (a reload).
  const { stream, error } = await takeStream();
  localStream = stream;
  if (localStream) {
    window.roomDebug.tracks.push(...localStream.getTracks());
    $('local').srcObject = localStream;
    syncToggles();
  } else {
    notice(`Camera or microphone not available (${error?.name}). You can still join; the other side will not see or hear you.`);
  }
}

/** Camera and microphone off for good: every track stopped, so none stays `live`. */
function releaseDevices() {
  for (const track of localStream?.getTracks() ?? []) track.stop();
  localStream = null;
  $('local').srcObject = null;
}

/** The Mute and Camera buttons as the stream's tracks are (the lobby may have turned them off). */
function syncToggles() {
  const { mic, camera } = badges.ownMedia();
  $('mute').setAttribute('aria-pressed', String(!mic));
  $('mute').textContent = mic ? 'Mute' : 'Unmute';
  $('camera').setAttribute('aria-pressed', String(!camera));
  $('camera').textContent = camera ? 'Camera off' : 'Camera on';
  $('local-tile').dataset.camera = camera ? 'on' : 'off';
}

/** Where "back" leads from here: the appointment's page, the agent console, or the chat
 *  whose invitation opened the room; null when the room was opened on its own. */
function backTarget() {
  const appointment = sessionStorage.getItem(returnKey);
  if (appointment) return { href: appointment, text: 'Back to your appointment' };
  if (asAgent || myKind === 'agent') return { href: '/agent.html', text: 'Back to the console' };
  // A room opened from a chat is one that rings (the welcome's `call_mode`).
  const chat = sessionStorage.getItem(chatKey);
  if (chat && callMode !== 'auto') return { href: chat, text: 'Back to the chat' };
  return null;
}

function fillBack(link) {
  const target = backTarget();
  show(link, !!target);
  if (!target) return;
  link.href = target.href;
  link.textContent = target.text;
}

/**
 * The call's view gives way to a card (the meeting ended, cannot be opened, or goes on
 * in another tab): no video, no toolbar, so no button is left that does nothing.
 */
function showOutcome(title, text, { joinHere = false } = {}) {
  closeLobby(); // HOOK(lobby): an unused preview must not stay live
  closePeer();
  releaseDevices();
  notice('');
  for (const id of ['stage', 'post-call', 'join', 'back-link']) show($(id), false);
  $('ended-title').textContent = title;
  $('ended-text').textContent = text;
  show($('ended-text'), !!text);
  show($('join-here'), joinHere);
  const back = document.querySelector('[data-testid="ended-back"]');
  back.classList.toggle('secondary', joinHere);
  fillBack(back);
  show($('ended'), true);
}

function endTheMeeting(message) {
  ended = true;
  sessionStorage.removeItem(tokenKey);
  sessionStorage.removeItem(leftKey);
  setCallState('ended');
  setRoomState('ended');
  if (message === ENDED) {
    const by = endedByMe ? 'You ended it for everyone.' : peerName && myKind !== 'agent' ? `${peerName} ended it.` : '';
    const close = backTarget() ? '' : ' You can close this page now.';
    showOutcome(callMode === 'ring' ? 'The call has ended' : 'The meeting has ended', `${by} No one can rejoin it.${close}`.trim());
  } else {
    showOutcome('This meeting cannot be opened', message);
  }
}

/** After our own leave: the room goes on without us; we may rejoin while it is open. */
function showLeft() {
  leaving = false;
  sessionStorage.setItem(leftKey, '1');
  closePeer();
  releaseDevices();
  setCallState('idle');
  setRoomState('left');
  notice('');
  show($('stage'), false);
  fillBack(document.querySelector('[data-testid="left-back"]'));
  show($('post-call'), true);
}

async function rejoin() {
  sessionStorage.removeItem(leftKey);
  show($('post-call'), false);
  show($('ended'), false);
  token = sessionStorage.getItem(tokenKey);
  if (sessionStorage.getItem(leftKey)) {
    showLeft();
    return;
  }
  if (!token && asAgent) token = await agentToken();
  if (token) await enter();
  else await showJoinForm('');
}

// ---------- joining ----------

async function showJoinForm(message) {
  show($('stage'), false);
  show($('join'), true);
  $('join-error').textContent = message || '';
  const info = await api('GET', `/api/join/${encodeURIComponent(roomId)}`);
  if (!info.ok) {
    endTheMeeting(info.status === 404 ? 'The meeting has ended.' : info.error.message);
    show($('join'), false);
    return;
  }
  badges.joinTitle(info.data.title); // HOOK(in-call view): a title that does not name the visitor
  if (info.data.state === 'ended') {
    endTheMeeting('The meeting has ended.');
    show($('join'), false);
    return;
  }
  const guest = info.data.audience === 'guest';
  show($('name-field'), true);
  // A customer room asks for what it names its customer by (phone and/or email).
  show($('email-field'), guest || info.data.asks_email);
  show($('phone-field'), guest || info.data.asks_phone);
  setRoomState('not joined');
  // HOOK(lobby): the preview and device choice beside the form; its Join takes them along.
  if (!localStream) await showLobby({ button: false });
}

async function join(event) {
  event.preventDefault();
  const value = (id) => $(id).value.trim() || undefined;
  const body = {
    code: value('code'), name: value('name'), email: value('email'), phone: value('phone'),
    password: $('join-password').value || undefined,
  };
  if (body.code) delete body.password;
  const answer = await api('POST', `/api/join/${encodeURIComponent(roomId)}`, body);
  if (!answer.ok) {
    $('join-error').textContent = answer.error.message;
    return;
  }
  token = answer.data.token;
  sessionStorage.setItem(tokenKey, token);
  show($('join'), false);
  await enter();
}

async function agentToken() {
  const answer = await api('POST', `/api/rooms/${encodeURIComponent(roomId)}/token`);
  if (!answer.ok) {
    endTheMeeting(answer.status === 401 ? 'Sign in on the agent page first.' : answer.error.message);
    return null;
  }
  return answer.data.token;
}

// ---------- the room socket ----------

async function enter() {
  show($('ended'), false);
  show($('stage'), true);
  if (!localStream) await startPreview();
  connect();
}

function connect() {
  // A reconnect timer that fires after the person left (or the meeting ended) stays out.
  if (ended || sessionStorage.getItem(leftKey)) return;
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  // The token goes in the first frame, never in the URL (URLs end up in access logs).
  const url = `${scheme}://${location.host}/ws/room?room=${encodeURIComponent(roomId)}`;
  setRoomState('connecting…');
  socket = new WebSocket(url);
  const opened = socket;
  socket.onopen = () => opened.send(JSON.stringify({ type: 'auth', token }));
  // One frame at a time, in order: a candidate must not overtake the description before it
  // (handling a description awaits the browser, and a candidate added before it is lost).
  socket.onmessage = (event) => {
    const frame = JSON.parse(event.data);
    inbox = inbox.then(() => handle(frame)).catch((e) => console.error(e));
  };
  socket.onclose = (event) => closed(event.code);
}

async function closed(code) {
  socket = null;
  if (ended) return;
  const refusal = CLOSES[code];
  if (code === 4410) return endTheMeeting(refusal);
  if (leaving || sessionStorage.getItem(leftKey)) return showLeft();
  if (code === 4400 || code === 4401 || code === 4403) {
    sessionStorage.removeItem(tokenKey);
    closePeer();
    if (asAgent) {
      token = await agentToken();
      if (token) connect();
      return;
    }
    // An appointment's or a chat's link gave the token: a new one comes from there.
    const back = sessionStorage.getItem(returnKey);
    if (back) {
      releaseDevices();
      show($('stage'), false);
      notice(refusal);
      $('back-link').href = back;
      show($('back-link'), true);
      return;
    }
    return showJoinForm(refusal);
  }
  if (code === 4000) {
    // This person went on in another tab or device: this page lets go of the camera and
    // may take the meeting back ("Join here" replaces the other connection in turn).
    setRoomState('in another tab');
    setCallState('idle');
    showOutcome('You are in this meeting elsewhere',
      'You joined it from another tab or device. "Join here" brings you back to this one.', { joinHere: true });
    return;
  }
  if (code === 4409) {
    setRoomState('not connected');
    setCallState('idle');
    showOutcome('You cannot join this meeting', refusal);
    return;
  }
  if (code === 1000) return endTheMeeting('The meeting has ended.');
  // The server holding the call stopped: the call is over, the room is not; rejoin it.
  if (code === 4503) notice(CLOSES[4503]);
  // Lost: come back with the same token (the seat waits for the grace period); an active
  // call is set up again once back (see room_welcome).
  setRoomState('reconnecting…');
  closePeer();
  retries += 1;
  setTimeout(connect, Math.min(500 * retries, 5000));
}

async function handle(frame) {
  switch (frame.type) {
    case 'room_welcome':
      retries = 0;
      polite = frame.polite;
      iceServers = frame.ice_servers;
      token = frame.token;
      sessionStorage.setItem(tokenKey, token);
      myKind = frame.kind;
      callMode = frame.call_mode === 'auto' ? 'auto' : 'ring';
      openUntil = frame.open_until ?? null;
      peerName = frame.peer?.name || '';
      show($('end-room'), myKind === 'agent');
      setRoomState('in the room', true);
      notice('');
      badges.welcomed(frame); // HOOK(in-call view): titles, the peer, our media state
      setCallState({ idle: 'idle', ringing_in: 'incoming call', ringing_out: 'calling…', active: 'idle' }[frame.call]);
      // An active call from before a reload or a dropped connection: it goes on. A fresh
      // peer connection; the other side, told `peer_back`, makes one too. (A meeting's
      // call that starts with our arrival comes as `call_started` next.)
      if (frame.call === 'active') startPeer();
      break;
    // HOOK(in-call view): the peer's name, presence and media state on the tile.
    case 'peer_joined':
      notice('');
      peerName = frame.peer.name;
      badges.peerChanged(frame.peer);
      break;
    case 'peer_away':
      badges.peerPresence(false);
      if (callState === 'active') setCallState('reconnecting…');
      break;
    case 'peer_back':
      badges.peerPresence(true);
      // Back in an active call: negotiate afresh on both sides, no click needed.
      if (callState === 'active' || callState === 'reconnecting…') startPeer();
      break;
    case 'peer_left':
      notice(`${peerName || 'The other side'} left the meeting. They can rejoin while it is open.`);
      peerName = '';
      badges.peerChanged(null);
      break;
    case 'peer_media': badges.peerMedia(frame); break;
    case 'left': showLeft(); break;
    case 'call_ringing': setCallState('calling…'); break;
    case 'call_incoming': setCallState('incoming call'); break;
    case 'call_started': startPeer(); break;
    case 'call_ended':
      closePeer();
      // A meeting's call ends only with someone's leaving (or the room's end): the room
      // waits for them, and the call starts again when they are back.
      if (callMode === 'auto') {
        setCallState('idle');
        if (frame.reason === 'peer_gone') notice('The other side did not come back. They can rejoin while the meeting is open.');
        break;
      }
      setCallState('ended');
      notice(frame.reason === 'rejected'
        ? (frame.detail === 'media_not_ready' ? 'The call was declined: the other side has no camera or microphone ready.' : 'The call was declined.')
        : frame.reason === 'peer_gone' ? 'The other side did not come back.' : '');
      break;
    case 'signal': await onSignal(frame.data); break;
    case 'room_ended': endTheMeeting('The meeting has ended.'); break;
    case 'error': notice(frame.message); break;
    default: break;
  }
}

// ---------- the call: perfect negotiation ----------

function startPeer() {
  closePeer();
  setCallState('active');
  window.roomDebug.callStartedAt = performance.now();
  window.roomDebug.connectedAt = null;
  pc = new RTCPeerConnection({ iceServers, iceTransportPolicy: forceRelay ? 'relay' : 'all' });
  const mine = pc;
  mine.onnegotiationneeded = async () => {
    try {
      makingOffer = true;
      await mine.setLocalDescription();
      send({ type: 'signal', data: { description: mine.localDescription } });
    } catch (e) {
      console.error(e);
    } finally {
      makingOffer = false;
    }
  };
  mine.onicecandidate = ({ candidate }) => { if (candidate) send({ type: 'signal', data: { candidate } }); };
  mine.ontrack = ({ track, streams }) => {
    const remote = $('remote');
    if (streams[0]) remote.srcObject = streams[0];
    else {
      if (!remote.srcObject) remote.srcObject = new MediaStream();
      remote.srcObject.addTrack(track);
    }
  };
  mine.onconnectionstatechange = () => {
    $('connection-state').textContent = mine.connectionState;
    badges.connectionState(mine.connectionState); // HOOK(in-call view)
    if (mine.connectionState === 'connected' && window.roomDebug.connectedAt === null) {
      window.roomDebug.connectedAt = performance.now();
    }
    report();
  };
  // The impolite side opens the negotiation; the polite side adds its media to the answer
  // (addMedia in onSignal). Both starting at once is what perfect negotiation settles, but
  // a collision right at the start made Chromium's polite side now and then answer
  // without ever gathering ICE candidates (seen in about 1 run in 6), so it is avoided.
  // Later renegotiations, from either side, go through the pattern as they come.
  mediaAdded = false;
  if (!polite) addMedia(mine);
  reportTimer = setInterval(report, REPORT_MS);
  watchQuality(mine); // HOOK(in-call view): the network-quality badge
}

/** Our camera and microphone into the call (receive-only without them). */
function addMedia(mine) {
  if (mediaAdded) return;
  mediaAdded = true;
  if (localStream) {
    for (const track of localStream.getTracks()) mine.addTrack(track, localStream);
  } else {
    // Receive anyway: the other side's media still comes.
    mine.addTransceiver('video', { direction: 'recvonly' });
    mine.addTransceiver('audio', { direction: 'recvonly' });
  }
}

async function onSignal({ description, candidate }) {
  if (!pc) return;
  const mine = pc;
  try {
    if (description) {
      const collision = description.type === 'offer' && (makingOffer || mine.signalingState !== 'stable');
      ignoreOffer = !polite && collision;
      if (ignoreOffer) return;
      await mine.setRemoteDescription(description);
      if (description.type === 'offer') {
        addMedia(mine);
        await mine.setLocalDescription();
        send({ type: 'signal', data: { description: mine.localDescription } });
      }
    } else if (candidate) {
      try {
        await mine.addIceCandidate(candidate);
      } catch (e) {
        if (!ignoreOffer) throw e;
      }
    }
  } catch (e) {
    console.error(e);
  }
}

function cameraOn() {
  const video = localStream?.getVideoTracks()[0];
  return !!video && video.enabled && video.readyState === 'live';
}

function report() {
  if (!pc) return;
  send({ type: 'report', connected: pc.connectionState === 'connected', camera: cameraOn() });
}

function closePeer() {
  clearInterval(reportTimer);
  reportTimer = null;
  stopQuality(); // HOOK(in-call view)
  if (pc) {
    pc.onconnectionstatechange = null;
    pc.close();
    pc = null;
  }
  $('remote').srcObject = null;
  $('connection-state').textContent = '—';
  badges.connectionState('');
}

// ---------- controls ----------

$('join-form').addEventListener('submit', join);
$('start-call').addEventListener('click', () => {
  if (!localStream) notice('Your camera and microphone are off; the other side will not see or hear you.');
  send({ type: 'start_call' });
});
$('accept-call').addEventListener('click', () => {
  // Media not ready: the call is declined with that reason, which the caller's page shows.
  if (!localStream) {
    notice('Your camera and microphone are not available, so the call was declined.');
    send({ type: 'reject_call', reason: 'media_not_ready' });
    return;
  }
  send({ type: 'accept_call' });
});
$('reject-call').addEventListener('click', () => send({ type: 'reject_call', reason: 'declined' }));
$('hang-up').addEventListener('click', () => send({ type: 'hang_up' }));
$('leave').addEventListener('click', () => {
  leaving = true;
  // The hub answers `left` and closes; were the socket gone already, leave anyway.
  if (socket && socket.readyState === WebSocket.OPEN) send({ type: 'leave' });
  else showLeft();
});
$('end-room').addEventListener('click', () => {
  const until = openUntil ? new Date(openUntil).toLocaleTimeString([], { timeStyle: 'short' }) : null;
  $('end-room-text').textContent = until && Date.now() < openUntil
    ? `This appointment's room stays open until ${until}. End the meeting for everyone now? No one can rejoin it.`
    : 'End the meeting for everyone? No one can rejoin it.';
  $('end-room-dialog').showModal();
});
$('end-room-confirm').addEventListener('click', () => {
  $('end-room-dialog').close();
  endedByMe = true;
  send({ type: 'end_room' });
});
$('end-room-cancel').addEventListener('click', () => $('end-room-dialog').close());
$('rejoin').addEventListener('click', () => rejoin());
$('join-here').addEventListener('click', () => {
  show($('ended'), false);
  enter();
});
// The room mostly has a tab of its own, opened from the chat or the console, which is
// still open behind it: "back" closes this tab, and where the browser does not let a page
// close its tab (it has a history), follows the link.
for (const link of document.querySelectorAll('a.back')) {
  link.addEventListener('click', (event) => {
    if (history.length > 1) return;
    event.preventDefault();
    window.close();
    setTimeout(() => { location.href = link.href; }, 300);
  });
}
// Closing the tab: the camera goes off with it; the hub sees the socket close (away, then
// the seat freed after the grace period), which a reload within it turns into a rejoin.
window.addEventListener('pagehide', () => {
  for (const track of localStream?.getTracks() ?? []) track.stop();
});
$('mute').addEventListener('click', (event) => {
  const muted = event.currentTarget.getAttribute('aria-pressed') !== 'true';
  for (const t of localStream?.getAudioTracks() ?? []) t.enabled = !muted;
  event.currentTarget.setAttribute('aria-pressed', String(muted));
  event.currentTarget.textContent = muted ? 'Unmute' : 'Mute';
  mediaToggled(); // HOOK(in-call view)
});
$('camera').addEventListener('click', (event) => {
  const off = event.currentTarget.getAttribute('aria-pressed') !== 'true';
  for (const t of localStream?.getVideoTracks() ?? []) t.enabled = !off;
  event.currentTarget.setAttribute('aria-pressed', String(off));
  event.currentTarget.textContent = off ? 'Camera on' : 'Camera off';
  report();
  mediaToggled(); // HOOK(in-call view)
});

/** Mute or camera changed: the other side's badges, and the choice for the next call. */
function mediaToggled() {
  badges.sendMedia();
  if (localStream) rememberOnOff({ micOn: badges.ownMedia().mic, cameraOn: badges.ownMedia().camera });
}
badges.initBadges({ send, stream: () => localStream });

(async function start() {
  if (!roomId) {
    endTheMeeting('This link is incomplete: it names no meeting.');
    return;
  }
  // A link from a chat's video invitation carries its token in the fragment.
  const fromLink = new URLSearchParams(location.hash.slice(1)).get('token');
  const fresh = !!fromLink || !sessionStorage.getItem(tokenKey);
  if (fromLink) {
    // A new admission from the link: whoever left before comes in again with it.
    sessionStorage.removeItem(leftKey);
    sessionStorage.setItem(tokenKey, fromLink);
    history.replaceState(null, '', location.pathname + location.search);
    // Not an appointment's link (its page says where it came from): a chat's invitation,
    // whose page is where "back" leads.
    if (!sessionStorage.getItem(returnKey)) {
      const from = document.referrer && new URL(document.referrer).origin === location.origin ? document.referrer : '/';
      sessionStorage.setItem(chatKey, from);
    }
  }
  token = sessionStorage.getItem(tokenKey);
  // Let in from an appointment's waiting room: straight into the call, with the devices
  // remembered from an earlier call or the defaults.
  const admittedKey = `room-admitted:${roomId}`;
  const admitted = sessionStorage.getItem(admittedKey) === '1';
  sessionStorage.removeItem(admittedKey);
  // HOOK(lobby): a fresh entry (the agent's link, a chat's invitation) passes the lobby
  // first; a reload or reconnect (a token kept from before) goes straight back in.
  if (fresh && !admitted && (token || asAgent)) {
    setRoomState('not joined');
    // The agent's token first, so the lobby can say who is inside.
    if (!token && asAgent) token = await agentToken();
    if (ended) return;
    const watching = watchInside();
    await showLobby({ button: true });
    watching.stop();
  }
  if (!token && asAgent) token = await agentToken();
  if (token) await enter();
  else await showJoinForm('');
})();

// ---------- the lobby: who is inside ----------

/** One `peek`: the hub's `room_inside`, or the Close code it refused with. */
function peek() {
  return new Promise((resolve) => {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${location.host}/ws/room?room=${encodeURIComponent(roomId)}`);
    let inside = null;
    ws.onopen = () => ws.send(JSON.stringify({ type: 'peek', token }));
    ws.onmessage = (event) => {
      const frame = JSON.parse(event.data);
      if (frame.type === 'room_inside') inside = frame;
    };
    ws.onerror = () => {};
    ws.onclose = (event) => resolve({ inside, code: event.code });
  });
}

/** Asks who is inside every few seconds while the lobby is open; `stop()` ends it. */
function watchInside() {
  let stopped = false;
  let timer = null;
  const round = async () => {
    if (stopped || !token) return;
    const { inside, code } = await peek();
    if (stopped) return;
    if (code === 4410) {
      stopped = true;
      endTheMeeting(ENDED);
      return;
    }
    showInside(inside);
    // An expired or refused token: nothing more to ask with; joining will say why.
    if (inside) timer = setTimeout(round, PEEK_MS);
  };
  round();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
      showInside(null);
    },
  };
}
