// The call's network quality, from the peer connection's statistics (getStats) every
// two seconds: the round trip of the selected candidate pair, and the share of the
// other side's audio and video packets lost since the last look.
//
//   good: round trip under 150 ms and loss under 2 %
//   fair: round trip under 400 ms and loss under 8 %
//   poor: anything worse
//
// Shown in the stage's quality badge with the figures in its tooltip; `window.roomDebug`
// carries the last reading for tests.

const $ = (id) => document.getElementById(id);
const EVERY_MS = 2000;

let timer = null;
let last = null;

export function grade(rttMs, lossPct) {
  if (rttMs === null && lossPct === null) return null;
  const rtt = rttMs ?? 0;
  const loss = lossPct ?? 0;
  if (rtt < 150 && loss < 2) return 'good';
  if (rtt < 400 && loss < 8) return 'fair';
  return 'poor';
}

async function sample(pc) {
  const stats = await pc.getStats();
  let rtt = null;
  let pairId = null;
  let received = 0;
  let lost = 0;
  stats.forEach((s) => {
    if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
    if (s.type === 'inbound-rtp') {
      received += s.packetsReceived || 0;
      lost += Math.max(0, s.packetsLost || 0);
    }
  });
  if (!pairId) stats.forEach((s) => { if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pairId = s.id; });
  const pair = pairId ? stats.get(pairId) : null;
  if (pair && typeof pair.currentRoundTripTime === 'number') rtt = pair.currentRoundTripTime * 1000;
  // Loss over the last interval, not since the start of the call.
  let lossPct = null;
  if (last) {
    const got = received - last.received;
    const missed = lost - last.lost;
    if (got + missed > 0) lossPct = (100 * missed) / (got + missed);
  }
  last = { received, lost };
  return { rtt, lossPct };
}

function render(reading) {
  const badge = $('quality');
  const level = reading ? grade(reading.rtt, reading.lossPct) : null;
  badge.hidden = !level;
  if (!level) return;
  badge.dataset.level = level;
  const words = { good: 'Good connection', fair: 'Fair connection', poor: 'Poor connection' };
  $('quality-text').textContent = words[level];
  const figures = [
    reading.rtt === null ? null : `round trip ${Math.round(reading.rtt)} ms`,
    reading.lossPct === null ? null : `packet loss ${reading.lossPct.toFixed(1)} %`,
  ].filter(Boolean).join(', ');
  badge.title = figures;
  badge.setAttribute('aria-label', `${words[level]}${figures ? ` (${figures})` : ''}`);
}

/** Starts watching `pc` (stops watching any earlier one). */
export function watchQuality(pc) {
  stopQuality();
  const tick = async () => {
    if (pc.connectionState !== 'connected') return;
    try {
      const reading = await sample(pc);
      if (window.roomDebug) window.roomDebug.quality = { ...reading, level: grade(reading.rtt, reading.lossPct) };
      render(reading);
    } catch (e) {
      console.error(e);
    }
  };
  timer = setInterval(tick, EVERY_MS);
  pc.addEventListener('connectionstatechange', () => { if (pc.connectionState === 'connected') tick(); });
}

export function stopQuality() {
  clearInterval(timer);
  timer = null;
  last = null;
  render(null);
  if (window.roomDebug) window.roomDebug.quality = null;
}
