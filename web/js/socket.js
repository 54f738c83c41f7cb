// A websocket that reconnects by itself with exponential backoff (capped, with
// jitter). Each new connection calls onOpen(send) so the page can say hello
// again (join, resume, buddy_join); frames arrive already parsed.
//
// It also checks that the connection is alive. The hub's own websocket pings are
// answered by the browser and never reach the page, and a network that drops without a
// reset (Wi-Fi changed, a NAT or proxy forgot the connection, a laptop woke up) closes
// nothing until TCP gives up, minutes later, while the page would say it is online and
// show what is typed as sending. So a connection silent for QUIET_MS is asked for a
// `pong` (answered by the hub's connection itself, not its busy loop), and one that
// answers nothing within ANSWER_MS is given up and reconnected like a dropped one. A
// connection still opening is left to the browser: given up early, its request could
// still reach the hub after the next one's and take the agent's desk from it (4000).

import { backoffDelay } from './backoff.js';

/** Close codes after which reconnecting would be wrong: another tab took over, the session ended
 * (signed out, password changed, expired: 4001), or the account was disabled. */
export const FINAL_CLOSE_CODES = new Set([4000, 4001, 4003]);

/** Silence after which the page asks the hub for a `pong` (frames of any kind count as life). */
export const QUIET_MS = 25000;
/** How long an asked `pong` (or any frame) may take before the connection counts as dead. */
export const ANSWER_MS = 10000;
/** How often the checks run (a hidden tab's timers may run less often; they still hold). */
const CHECK_EVERY_MS = 5000;

export class ReconnectingSocket {
  constructor(path, { onOpen, onFrame, onState, onFinalClose } = {}) {
    this.path = path;
    this.handlers = { onOpen, onFrame, onState, onFinalClose };
    this.attempt = 0;
    this.ws = null;
    this.stopped = true;
    this.timer = null;
    this.checker = null;
    // When the current connection last gave a frame and was asked for a `pong`
    // (performance.now(), which never goes back), and the checks run since it was asked.
    this.heardAt = 0;
    this.askedAt = 0;
    this.checksSinceAsked = 0;
  }

  get url() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${scheme}//${location.host}${this.path}`;
  }

  start() {
    this.stopped = false;
    if (!this.onOnline) {
      // The browser says the network is back: try now rather than at the end of the backoff wait.
      this.onOnline = () => { if (!this.stopped && !this.ws) this.connect(); };
      window.addEventListener('online', this.onOnline);
      // The browser says the network is gone: a socket it keeps open may be dead, so ask now.
      this.onOffline = () => { if (this.connected && !this.askedAt) this.ask(); };
      window.addEventListener('offline', this.onOffline);
    }
    this.checker ??= setInterval(() => this.check(), CHECK_EVERY_MS);
    this.connect();
  }

  /** The liveness checks: ask a quiet connection for a `pong`; give up one that stays silent. */
  check() {
    const ws = this.ws;
    if (!ws || this.stopped || ws.readyState !== WebSocket.OPEN) return;
    const now = performance.now();
    if (this.askedAt) {
      // Given up after two checks at least since asking, not on the clock's word alone: a
      // clock that jumps (a laptop waking up) would otherwise give up an answer on its way.
      this.checksSinceAsked += 1;
      if (this.checksSinceAsked >= 2 && now - this.askedAt > ANSWER_MS) this.giveUp(ws);
    } else if (now - this.heardAt > QUIET_MS) this.ask();
  }

  ask() {
    this.askedAt = performance.now();
    this.checksSinceAsked = 0;
    this.send({ type: 'ping' });
  }

  /** Leaves a connection that shows no life (its late events are ignored) and reconnects. */
  giveUp(ws) {
    this.ws = null;
    ws.close();
    this.reconnectLater();
  }

  reconnectLater() {
    const delay = backoffDelay(this.attempt);
    this.attempt += 1;
    this.handlers.onState?.('reconnecting', delay);
    this.timer = setTimeout(() => { if (!this.stopped) this.connect(); }, delay);
  }

  connect() {
    clearTimeout(this.timer);
    const ws = new WebSocket(this.url);
    this.ws = ws;
    this.askedAt = 0;
    this.checksSinceAsked = 0;
    this.handlers.onState?.('connecting');
    ws.addEventListener('open', () => {
      if (this.ws !== ws) return;
      this.heardAt = performance.now();
      this.handlers.onState?.('open');
      this.handlers.onOpen?.((frame) => this.send(frame));
    });
    ws.addEventListener('message', (event) => {
      if (this.ws !== ws) return;
      // A frame from the hub proves the connection works; later drops start from a short delay again.
      this.attempt = 0;
      this.heardAt = performance.now();
      this.askedAt = 0;
      let frame;
      try { frame = JSON.parse(event.data); } catch { return; }
      if (frame.type === 'pong') return;
      this.handlers.onFrame?.(frame);
    });
    ws.addEventListener('close', (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      if (FINAL_CLOSE_CODES.has(event.code)) {
        this.stopped = true;
        clearInterval(this.checker);
        this.checker = null;
        this.handlers.onState?.('closed');
        this.handlers.onFinalClose?.(event.code, event.reason);
        return;
      }
      this.reconnectLater();
    });
  }

  /** Sends a frame if connected; returns whether it went out. */
  send(frame) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  get connected() {
    return !!this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  /** Closes for good (no reconnect). */
  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.checker);
    this.checker = null;
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000, 'bye');
    }
    this.handlers.onState?.('closed');
  }
}
