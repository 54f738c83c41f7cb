// The widget page's side of the chat widget: the desk's name, colour and greeting from
// /api/widget, "nobody is online" while no agent is, and the talk with the loader
// (widget.js) on the host page: postMessage to the host's origin only, once that origin
// is one the hub allows; messages taken only from the parent window at that origin (the
// customer's identity, as the site vouches for it, among them).
// The chat itself is customer.js, as on the customer page.

import { beep } from './notify.js';
import { setIdentity } from './visitor.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const framed = window.parent !== window && params.get('embed') === '1';
/** The host page's origin, once checked against the allowed list; until then nothing is posted. */
let hostOrigin = null;
const outbox = [];
/** Whether the loader shows the chat window now (sounds only when it is not looked at). */
let open = !framed;
let sessionActive = false;

function post(msg) {
  const data = { source: 'switchboard-widget', ...msg };
  if (hostOrigin) window.parent.postMessage(data, hostOrigin);
  else if (framed) outbox.push(data);
}

window.addEventListener('message', (e) => {
  if (!hostOrigin || e.source !== window.parent || e.origin !== hostOrigin) return;
  const data = e.data;
  if (!data || data.source !== 'switchboard-widget-loader') return;
  // Who the site says the customer is (the hub believes it only with a valid hash).
  if (data.type === 'identity') setIdentity(data);
  if (data.type === 'visibility') {
    open = !!data.open;
    if (open) toEndOfChat();
    // The message box when a chat takes messages (not the rating's comment box after one:
    // it would scroll the window away from the last lines and open a phone's keyboard).
    if (open && data.focus) setTimeout(() => (document.querySelector('#session:not([hidden]) [data-testid="message-input"]:not([disabled])') || $('name'))?.focus(), 50);
  }
});

document.addEventListener('switchboard:session', (e) => {
  sessionActive = e.detail.active;
  post({ type: 'session', active: sessionActive });
});
// Someone answered: someone is online (whatever the last look at /api/widget said).
document.addEventListener('switchboard:chatting', () => { deskOnline = true; showStatus(); });
// In a chat the transcript needs the room; the greeting belongs to the start.
const inSession = () => document.body.classList.toggle('in-session', !$('session').hidden);
new MutationObserver(inSession).observe($('session'), { attributes: true, attributeFilter: ['hidden'] });

/** A chat that ended reads as a page (widget.css): the window goes to its end, where the
 *  last lines (a code sent while the chat was minimised) meet the rating and "Start a new
 *  chat". After the task that ended it, which adds the rating too; a timer, not an
 *  animation frame, which a minimised (hidden) frame may never get. */
function toEndOfChat() {
  if ($('ended').hidden || $('session').hidden) return;
  setTimeout(() => { const main = document.querySelector('main'); main.scrollTop = main.scrollHeight; }, 0);
}
new MutationObserver(toEndOfChat).observe($('ended'), { attributes: true, attributeFilter: ['hidden'] });

document.addEventListener('switchboard:reply', (e) => {
  post({ type: 'reply', name: e.detail.name });
  // customer.js sounds for a hidden page; here also for a page whose chat is minimised.
  if (!open && !document.hidden) beep();
});

if (framed) {
  $('widget-close').hidden = false;
  $('widget-close').addEventListener('click', () => post({ type: 'close' }));
  document.addEventListener('keydown', (e) => { if (e.key === 'Escape') post({ type: 'close' }); });
}

/** White or near-black text, whichever reads better on `hex`. */
function inkOn(hex) {
  let h = hex.slice(1);
  if (h.length === 3) h = [...h].map((c) => c + c).join('');
  const [r, g, b] = [0, 2, 4].map((i) => parseInt(h.slice(i, i + 2), 16) / 255)
    .map((c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
  const lum = 0.2126 * r + 0.7152 * g + 0.0722 * b;
  return (1.05 / (lum + 0.05)) >= ((lum + 0.05) / 0.05) ? '#ffffff' : '#111827';
}

/** Whether the desk has someone online, as /api/widget last said (or a chat showed). */
let deskOnline = false;

/** The header's status: the desk's, except while the topic the customer chose says nobody
 *  is there (the desk may be online in another topic): then the header says what the
 *  topic's notice says, and promises no quick reply, so the window gives one answer. */
function showStatus() {
  const away = !$('offline').hidden && $('offline').querySelector('h2')?.textContent;
  if (!away) {
    showOnline(deskOnline);
    return;
  }
  $('widget-greeting').hidden = true;
  $('widget-status').classList.remove('online');
  $('widget-status-text').textContent = away;
  $('widget-offline').hidden = true;
}
new MutationObserver(showStatus).observe($('offline'), { attributes: true, attributeFilter: ['hidden'], childList: true });

function showOnline(online) {
  // The desk's greeting may promise a quick reply ("within 2 minutes"): not while nobody
  // is there to give it; the "nobody is online" notice speaks instead.
  $('widget-greeting').hidden = !online || !$('widget-greeting').textContent;
  $('widget-status').classList.toggle('online', online);
  $('widget-status-text').textContent = online ? 'We are online' : 'Nobody is online right now';
  $('widget-offline').hidden = online;
  const waiting = $('waiting-text');
  if (waiting) waiting.textContent = online ? 'Connecting you to an agent…' : 'Nobody is online right now — you keep your place in line until someone is back.';
}

async function config() {
  try {
    const res = await fetch('/api/widget', { headers: { accept: 'application/json' } });
    return res.ok ? await res.json() : null;
  } catch { return null; }
}

async function start() {
  const c = await config();
  if (c) {
    document.body.style.setProperty('--brand', c.color);
    document.body.style.setProperty('--brand-ink', inkOn(c.color));
    $('widget-title').textContent = c.title;
    $('widget-avatar').textContent = [...c.title][0]?.toUpperCase() || 'S';
    document.title = `Chat with ${c.title}`;
    $('widget-greeting').textContent = c.greeting;
    deskOnline = !!(c.agents_online || c.bot_online);
    showStatus();
  }
  if (framed && c) {
    const claimed = params.get('host');
    const allowed = [location.origin, ...c.allowed_origins];
    const ancestor = location.ancestorOrigins?.[0];
    if (claimed && allowed.includes(claimed) && (!ancestor || ancestor === claimed)) {
      hostOrigin = claimed;
      window.parent.postMessage({ source: 'switchboard-widget', type: 'ready', title: c.title, color: c.color }, hostOrigin);
      for (const m of outbox.splice(0)) window.parent.postMessage(m, hostOrigin);
    }
  }
  // While nobody is online the status is asked again now and then, so the header turns
  // green once an agent signs in.
  setInterval(async () => {
    if (document.hidden) return;
    const again = await config();
    if (!again) return;
    deskOnline = !!(again.agents_online || again.bot_online);
    showStatus();
  }, 15000);
}

start();
