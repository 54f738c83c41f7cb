// Announces a new chat without moving focus: a short WebAudio beep and a
// blinking document title until the page is looked at again.

let audio = null;
let flashTimer = null;
let baseTitle = document.title;
let lastBeep = 0;

export function beep() {
  // A burst of messages makes one sound, not a rattle.
  if (Date.now() - lastBeep < 1500) return;
  lastBeep = Date.now();
  try {
    audio = audio || new AudioContext();
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.15, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.25);
    osc.connect(gain).connect(audio.destination);
    osc.start();
    osc.stop(audio.currentTime + 0.25);
  } catch {
    // No audio (autoplay policy, headless): the title flash still tells.
  }
}

/**
 * The title shown when nothing flashes (e.g. with an unread count in front); a flash
 * running now comes back to it when it stops.
 */
export function setBaseTitle(text) {
  baseTitle = text;
  if (!flashTimer) document.title = text;
}

export function flashTitle(text) {
  stopFlash();
  let on = true;
  document.title = `🔔 ${text}`;
  flashTimer = setInterval(() => {
    on = !on;
    document.title = on ? `🔔 ${text}` : baseTitle;
  }, 1000);
  // Stops once the agent is back on the page; it never takes focus itself.
  const stopIfSeen = () => { if (document.visibilityState === 'visible' && document.hasFocus()) stopFlash(); };
  setTimeout(() => {
    window.addEventListener('focus', stopFlash, { once: true });
    document.addEventListener('keydown', stopFlash, { once: true });
    document.addEventListener('pointerdown', stopFlash, { once: true });
  }, 1500);
  setTimeout(stopIfSeen, 8000);
}

export function stopFlash() {
  if (flashTimer) {
    clearInterval(flashTimer);
    flashTimer = null;
    document.title = baseTitle;
  }
}
