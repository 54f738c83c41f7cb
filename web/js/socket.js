// A websocket that reconnects by itself with exponential backoff (capped, with
// jitter). Each new connection calls onOpen(send) so the page can say hello
// again (join, resume, buddy_join); frames arrive already parsed.

import { backoffDelay } from './backoff.js';

/** Close codes after which reconnecting would be wrong: another tab took over, the session ended
 * (signed out, password changed, expired: 4001), or the account was disabled. */
export const FINAL_CLOSE_CODES = new Set([4000, 4001, 4003]);

export class ReconnectingSocket {
  constructor(path, { onOpen, onFrame, onState, onFinalClose } = {}) {
    this.path = path;
    this.handlers = { onOpen, onFrame, onState, onFinalClose };
    this.attempt = 0;
    this.ws = null;
    this.stopped = true;
    this.timer = null;
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
    }
    this.connect();
  }

  connect() {
    clearTimeout(this.timer);
    const ws = new WebSocket(this.url);
    this.ws = ws;
    this.handlers.onState?.('connecting');
    ws.addEventListener('open', () => {
      if (this.ws !== ws) return;
      this.handlers.onState?.('open');
      this.handlers.onOpen?.((frame) => this.send(frame));
    });
    ws.addEventListener('message', (event) => {
      if (this.ws !== ws) return;
      // A frame from the hub proves the connection works; later drops start from a short delay again.
      this.attempt = 0;
      let frame;
      try { frame = JSON.parse(event.data); } catch { return; }
      this.handlers.onFrame?.(frame);
    });
    ws.addEventListener('close', (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      if (FINAL_CLOSE_CODES.has(event.code)) {
        this.stopped = true;
        this.handlers.onState?.('closed');
        this.handlers.onFinalClose?.(event.code, event.reason);
        return;
      }
      const delay = backoffDelay(this.attempt);
      this.attempt += 1;
      this.handlers.onState?.('reconnecting', delay);
      this.timer = setTimeout(() => { if (!this.stopped) this.connect(); }, delay);
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
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000, 'bye');
    }
    this.handlers.onState?.('closed');
  }
}
