// The room page's view of the other person and of the call's state: their name on the
// tile (and, while their camera is off or no call runs, a name card instead of a black
// picture), badges for their microphone muted and camera off, the caption that follows
// the call ("Calling Anna…", "Connecting…", nothing once connected), and titles that
// name the other person. Also sends our own microphone and camera state (`media`), which
// the hub relays to the other member as `peer_media` (docs/protocol.md).

const $ = (id) => document.getElementById(id);

const state = {
  /** The room's title, my own name and kind, from `room_welcome`. */
  title: '',
  me: '',
  kind: '',
  /** The other member: { name, kind, present } or null. */
  peer: null,
  /** Their microphone and camera, as last told (`peer_media`); on until told otherwise. */
  mic: true,
  camera: true,
  /** A meeting (`auto`: the call runs while both are in) or a call that rings (`ring`). */
  mode: 'ring',
  /** The page's call state words (room.js setCallState) and the connection's state. */
  call: 'idle',
  connection: '',
  send: () => {},
  stream: () => null,
};

/** room.js hands over how to send a frame and where its stream is. */
export function initBadges({ send, stream }) {
  state.send = send;
  state.stream = stream;
}

/** Our microphone and camera as the other side should see them. */
export function ownMedia() {
  const s = state.stream();
  const on = (tracks) => tracks.some((t) => t.enabled && t.readyState === 'live');
  return { mic: !!s && on(s.getAudioTracks()), camera: !!s && on(s.getVideoTracks()) };
}

/** Tells the other member (through the hub) our microphone and camera state. */
export function sendMedia() {
  state.send({ type: 'media', ...ownMedia() });
  const { camera } = ownMedia();
  $('local-tile').dataset.camera = camera ? 'on' : 'off';
}

/**
 * The room's title as this person should see it. The titles the hub makes for
 * appointments and chats ("Appointment with Carla", "Video call with Carla") are written
 * from the agent's side, as may be a title the agent typed: a visitor is not shown one
 * of those, nor one with their own name in it, but the other person's name.
 */
function titles() {
  const peerName = state.peer?.name;
  const fromAgentSide = /^(Appointment|Video call) with /.test(state.title)
    || (!!state.me && state.title.includes(state.me));
  const visitor = state.kind && state.kind !== 'agent';
  const heading = peerName ? `Video call with ${peerName}` : (visitor && fromAgentSide) || !state.title ? 'Video call' : state.title;
  const subtitle = visitor && fromAgentSide ? '' : state.title;
  $('room-title').textContent = heading;
  $('room-subtitle').textContent = subtitle && subtitle !== heading ? subtitle : '';
  document.title = `${heading} — Switchboard`;
}

/** The join page's title, before joining (the room's title, unless it names the visitor). */
export function joinTitle(title) {
  state.title = title;
  state.kind = 'visitor';
  titles();
}

function caption() {
  const name = state.peer?.name;
  if (!state.peer) return 'Waiting for the other person to join…';
  // Away within the grace period: their page reconnects by itself (a reload, a drop).
  if (!state.peer.present) return `${name} is reconnecting…`;
  switch (state.call) {
    case 'incoming call': return `${name} is calling…`;
    case 'calling…': return `Calling ${name}…`;
    case 'active': return state.connection === 'connected' ? '' : 'Connecting…';
    case 'ended': return 'The call has ended.';
    // A meeting starts its call by itself: a moment between their arrival and the call.
    case 'idle': return state.mode === 'auto' ? 'Connecting…' : `${name} is here. Press Call to start the video.`;
    // A state this module does not know (room.js may add some): no stale words.
    default: return '';
  }
}

function render() {
  const tile = $('remote-tile');
  const name = state.peer?.name || '';
  // Nobody there: the caption says we wait; the corner label stays empty (and hidden).
  $('peer-name').textContent = name ? `${name}${state.peer.present ? '' : ' (connecting…)'}` : '';
  $('peer-tile-name').textContent = name || 'Nobody here yet';
  $('peer-initial').textContent = name ? name.trim().charAt(0).toUpperCase() : '…';
  const inCall = state.call === 'active';
  // Badges only while a call runs: outside a call there is no picture or sound anyway.
  const showCameraOff = inCall && !!state.peer && !state.camera;
  $('peer-muted').hidden = !(inCall && !!state.peer && !state.mic);
  $('peer-camera-off').hidden = !showCameraOff;
  // The name card instead of the picture: no call, or their camera is off.
  tile.dataset.picture = inCall && state.camera && state.connection === 'connected' ? 'on' : 'off';
  const text = caption();
  $('call-caption').textContent = text;
  $('call-caption').hidden = !text;
  titles();
}

/** `room_welcome`: the room's title, who I am, who is there, whether the call rings. */
export function welcomed(frame) {
  state.mode = frame.call_mode === 'auto' ? 'auto' : 'ring';
  state.title = frame.title;
  state.me = frame.name;
  state.kind = frame.kind;
  peerChanged(frame.peer);
}

/** The other member as the welcome names them, one who arrived (a new person), or none.
 *  Their microphone and camera count as on until their `peer_media` says otherwise. */
export function peerChanged(peer) {
  state.peer = peer ? { ...peer } : null;
  Object.assign(state, { mic: true, camera: true });
  render();
  if (peer?.present) sendMedia();
}

/** The other member's connection went away (false) or is back (true). */
export function peerPresence(present) {
  if (state.peer) state.peer.present = present;
  render();
  if (present) sendMedia();
}

/** `peer_media` from the hub. */
export function peerMedia({ mic, camera }) {
  state.mic = !!mic;
  state.camera = !!camera;
  render();
}

/** room.js's call state words: idle, calling…, incoming call, active, ended. */
export function callState(words) {
  const started = words === 'active' && state.call !== 'active';
  state.call = words;
  if (words !== 'active') state.connection = '';
  render();
  if (started) sendMedia();
}

export function connectionState(value) {
  state.connection = value;
  render();
}
