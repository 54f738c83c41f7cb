// The room page's lobby: before joining, a preview of the camera, a choice of camera and
// microphone (the browser's devices), a level meter for the microphone, and whether to
// join with the camera or the microphone off. The choices are remembered in localStorage
// for the next call; the stream the lobby holds is the one the call uses (`takeStream`),
// and any preview it does not hand over is stopped.
//
// Camera or microphone "off" keeps the track but disabled (`enabled = false`): the call's
// transceivers are the same either way, so turning it on later needs no renegotiation.

import { show } from './dom.js';

const $ = (id) => document.getElementById(id);
const STORE_KEY = 'room-devices';

/** The remembered choices: { camera: deviceId, mic: deviceId, cameraOn, micOn }. */
export function remembered() {
  try {
    const saved = JSON.parse(localStorage.getItem(STORE_KEY) || '{}');
    return {
      camera: typeof saved.camera === 'string' ? saved.camera : '',
      mic: typeof saved.mic === 'string' ? saved.mic : '',
      cameraOn: saved.cameraOn !== false,
      micOn: saved.micOn !== false,
    };
  } catch {
    return { camera: '', mic: '', cameraOn: true, micOn: true };
  }
}

function remember(changes) {
  localStorage.setItem(STORE_KEY, JSON.stringify({ ...remembered(), ...changes }));
}

/** Camera and microphone with the remembered devices; a device gone falls back to the default. */
async function open({ camera, mic }) {
  const want = (id) => (id ? { deviceId: { exact: id } } : true);
  try {
    return await navigator.mediaDevices.getUserMedia({ video: want(camera), audio: want(mic) });
  } catch (e) {
    if (!camera && !mic) throw e;
    if (e.name !== 'OverconstrainedError' && e.name !== 'NotFoundError') throw e;
    return navigator.mediaDevices.getUserMedia({ video: true, audio: true });
  }
}

let stream = null;
let meter = null;
let lobbyShown = false;
/** Device changes one after another (two quick changes must not leave a stream live). */
let pending = Promise.resolve();

function applyOnOff(s = stream) {
  const { cameraOn, micOn } = remembered();
  for (const t of s?.getVideoTracks() ?? []) t.enabled = cameraOn;
  for (const t of s?.getAudioTracks() ?? []) t.enabled = micOn;
  if (lobbyShown) {
    $('lobby-camera-on').checked = cameraOn;
    $('lobby-mic-on').checked = micOn;
    show($('lobby-camera-off'), !cameraOn || !s?.getVideoTracks().length);
  }
}

/** A level meter (0–100 %) on the stream's microphone, drawn every animation frame. */
function startMeter(s) {
  stopMeter();
  const track = s.getAudioTracks()[0];
  if (!track) return;
  const context = new AudioContext();
  // Browsers may hold an AudioContext made without a click suspended (autoplay rules):
  // the first click or key on the page starts the meter then.
  if (context.state === 'suspended') {
    const wake = () => context.resume().catch(() => {});
    wake();
    for (const kind of ['pointerdown', 'keydown']) addEventListener(kind, wake, { once: true, capture: true });
  }
  const source = context.createMediaStreamSource(new MediaStream([track]));
  const analyser = context.createAnalyser();
  analyser.fftSize = 512;
  source.connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  const bar = $('mic-level');
  let frame = 0;
  const draw = () => {
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const v of samples) sum += v * v;
    // RMS to a rough 0–100 scale: speech sits around 0.05–0.3 RMS.
    const level = track.enabled ? Math.min(100, Math.round(Math.sqrt(sum / samples.length) * 300)) : 0;
    bar.style.width = `${level}%`;
    bar.parentElement.setAttribute('aria-valuenow', String(level));
    bar.parentElement.dataset.level = String(level);
    frame = requestAnimationFrame(draw);
  };
  draw();
  meter = { stop() { cancelAnimationFrame(frame); source.disconnect(); context.close().catch(() => {}); } };
}

function stopMeter() {
  meter?.stop();
  meter = null;
}

function stopStream(s) {
  for (const t of s?.getTracks() ?? []) t.stop();
}

/** Fills the two device lists, the device in use selected. */
async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  const inUse = (kind) => stream?.getTracks().find((t) => t.kind === kind)?.getSettings().deviceId || '';
  const fill = (select, kind, fallback) => {
    const found = devices.filter((d) => d.kind === kind);
    select.replaceChildren(...found.map((d, i) => new Option(d.label || `${fallback} ${i + 1}`, d.deviceId)));
    select.value = inUse(kind === 'videoinput' ? 'video' : 'audio') || select.options[0]?.value || '';
    select.disabled = found.length === 0;
  };
  fill($('camera-select'), 'videoinput', 'Camera');
  fill($('mic-select'), 'audioinput', 'Microphone');
}

/** (Re)opens the stream on the remembered devices, replacing the preview, after any change
 *  before it. The old stream is stopped first: some systems will not open a second camera
 *  while one is in use. */
function reopen() {
  pending = pending.then(async () => {
    if (!lobbyShown) return;
    stopMeter();
    stopStream(stream);
    stream = null;
    $('lobby-video').srcObject = null;
    const fresh = await open(remembered());
    if (!lobbyShown) { stopStream(fresh); return; } // joined or ended meanwhile
    stream = fresh;
    $('lobby-error').textContent = '';
    applyOnOff();
    $('lobby-video').srcObject = stream;
    startMeter(stream);
  }).catch(failed);
  return pending;
}

function failed(e) {
  const message = e.name === 'NotAllowedError'
    ? 'The browser did not allow the camera and microphone. You can still join; the other side will not see or hear you.'
    : `Camera or microphone not available (${e.name}). You can still join; the other side will not see or hear you.`;
  $('lobby-error').textContent = message;
}

/**
 * Shows the lobby and starts the preview. With `button`, resolves when "Join now" is
 * pressed; without (the join form has its own button), resolves at once.
 */
export async function showLobby({ button }) {
  lobbyShown = true;
  show($('lobby'), true);
  show($('lobby-join'), button);
  // Listened for from the moment the button shows: a click while the camera is still
  // opening counts (it used to be lost, leaving the user in the lobby).
  const pressed = button
    ? new Promise((resolve) => $('lobby-join').addEventListener('click', resolve, { once: true }))
    : null;
  $('lobby-error').textContent = '';
  const choice = remembered();
  if (!stream) {
    try {
      stream = await open(choice);
      $('lobby-video').srcObject = stream;
      startMeter(stream);
    } catch (e) {
      stream = null;
      failed(e);
    }
  }
  applyOnOff();
  try {
    await listDevices();
  } catch (e) {
    console.error(e);
  }
  // A headset plugged in (or out) while in the lobby shows up in the lists.
  navigator.mediaDevices.ondevicechange = () => { if (lobbyShown) listDevices().catch(console.error); };
  if (pressed) await pressed;
}

/**
 * Hands the lobby's stream to the call (opening one with the remembered choices when the
 * lobby was skipped, as on a reload), and closes the lobby. Null when no device can be had.
 */
export async function takeStream() {
  await pending;
  stopMeter();
  if (lobbyShown) {
    show($('lobby'), false);
    $('lobby-video').srcObject = null;
    lobbyShown = false;
  }
  let s = stream;
  stream = null;
  if (!s) {
    try {
      s = await open(remembered());
    } catch (e) {
      return { stream: null, error: e };
    }
  }
  applyOnOff(s);
  return { stream: s, error: null };
}

/** Closes the lobby without handing its stream on (the meeting ended before joining). */
export function closeLobby() {
  stopMeter();
  stopStream(stream);
  stream = null;
  if (lobbyShown) {
    show($('lobby'), false);
    $('lobby-video').srcObject = null;
    lobbyShown = false;
  }
}

/**
 * Who is in the room already, as the hub's `room_inside` says (room.js asks it while the
 * lobby is open): the other person's name, or nobody yet. `null` hides the line (no
 * answer, or no token to ask with: nobody is named before the access code is given).
 */
export function showInside(inside) {
  const line = $('lobby-inside');
  if (!inside) {
    show(line, false);
    return;
  }
  const { peer, elsewhere } = inside;
  let text;
  if (elsewhere) text = 'You are in this meeting in another tab or on another device. Joining here moves you to this one.';
  else if (peer?.present) text = `${peer.name} is in the room.`;
  else if (peer) text = `${peer.name} is in the room, reconnecting.`;
  else text = 'No one else is in the room yet.';
  $('lobby-inside-text').textContent = text;
  $('lobby-inside-initial').textContent = peer && !elsewhere ? peer.name.trim().charAt(0).toUpperCase() : '';
  line.dataset.state = elsewhere ? 'elsewhere' : peer ? 'someone' : 'empty';
  show(line, true);
}

/** The remembered on/off choice changed during the call (mute, camera buttons). */
export function rememberOnOff({ micOn, cameraOn }) {
  remember({ micOn, cameraOn });
}

// ---------- the lobby's own controls ----------

$('camera-select').addEventListener('change', (event) => {
  remember({ camera: event.target.value });
  reopen();
});
$('mic-select').addEventListener('change', (event) => {
  remember({ mic: event.target.value });
  reopen();
});
$('lobby-camera-on').addEventListener('change', (event) => {
  remember({ cameraOn: event.target.checked });
  applyOnOff();
});
$('lobby-mic-on').addEventListener('change', (event) => {
  remember({ micOn: event.target.checked });
  applyOnOff();
});
// Leaving the page from the lobby: the preview must not stay live.
addEventListener('pagehide', closeLobby);
