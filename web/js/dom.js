// Small DOM and HTTP helpers shared by every page. Text is always set with
// textContent, never innerHTML, so names and messages cannot inject markup.

/** Creates an element: el('button', {class: 'x', dataset: {testid: 'y'}}, 'text', child). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key === 'text') node.textContent = value;
    else if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, '');
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/**
 * A message's text with its web addresses as links: text nodes and <a> elements only
 * (never markup from the text). Only http(s) addresses become links, opened in a new tab
 * without giving it a handle on this page (`noopener noreferrer`).
 */
export function linkified(text) {
  const parts = [];
  const pattern = /\bhttps?:\/\/[^\s<>"']+/gi;
  let last = 0;
  for (const match of text.matchAll(pattern)) {
    // Trailing punctuation usually ends the sentence, not the address.
    const url = match[0].replace(/[.,;:!?)\]]+$/, '');
    let href;
    try { href = new URL(url).href; } catch { continue; }
    if (match.index > last) parts.push(text.slice(last, match.index));
    parts.push(el('a', { href, target: '_blank', rel: 'noopener noreferrer' }, url));
    last = match.index + url.length;
  }
  if (last < text.length) parts.push(text.slice(last));
  return parts;
}

/** Finds an element by its data-testid within `root`. */
export const byTestId = (id, root = document) => root.querySelector(`[data-testid="${id}"]`);

/** Clock time of a server timestamp (ms since epoch), e.g. "14:05". */
export function clock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/** Date and time for archive listings. */
export function dateTime(ms) {
  if (!ms) return '—';
  return new Date(ms).toLocaleString([], { dateStyle: 'short', timeStyle: 'short' });
}

/** Shows or hides elements (uses the hidden attribute so CSS and screen readers agree). */
export function show(node, visible = true) {
  node.hidden = !visible;
}

/** Longest wait for an API answer before it counts as a network failure. */
const API_TIMEOUT_MS = 15000;

/** The result of a request that got no HTTP answer (status 0). */
function unreachable(e) {
  const timeout = e?.name === 'TimeoutError';
  return {
    ok: false, status: 0, data: null,
    error: timeout ? { code: 'timeout', message: 'the server did not answer in time' }
      : { code: 'network', message: 'cannot reach the server; check your connection' },
  };
}

/**
 * Calls the JSON API. Never throws for HTTP errors: returns {ok, status, data, error}
 * where error is the server's {code, message} so forms can show it by the field.
 */
export async function api(method, path, body) {
  // A request that hangs (a half-dead network) ends as an error the caller can retry.
  const init = { method, headers: {}, credentials: 'same-origin', signal: AbortSignal.timeout(API_TIMEOUT_MS) };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    return unreachable(e);
  }
  let data = null;
  let text;
  try { text = await response.text(); } catch (e) { return unreachable(e); }
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (response.ok) return { ok: true, status: response.status, data, error: null };
  const error = data?.error ?? { code: `http_${response.status}`, message: text || response.statusText };
  return { ok: false, status: response.status, data, error };
}

/** A short unique id for matching a sent message to the hub's `ack` of it. */
export function clientId() {
  return (crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`).slice(0, 36);
}

/** Says something to screen readers through a page-wide polite live region. */
export function announce(text) {
  let region = document.getElementById('sr-announcer');
  if (!region) {
    region = el('div', { id: 'sr-announcer', class: 'sr-only', 'aria-live': 'polite', role: 'status' });
    document.body.append(region);
  }
  region.textContent = '';
  // A new text node after clearing makes screen readers speak repeated messages too.
  setTimeout(() => { region.textContent = text; }, 30);
}

/**
 * Runs `action` on the second press of `button` within 5 s; the first press only changes
 * its text to `confirm` (instead of confirm(), which would block the page). For removals
 * and cancellations that cannot be undone.
 */
export function onSecondPress(button, confirm, action) {
  const label = button.textContent;
  let armed = false;
  button.addEventListener('click', async () => {
    if (!armed) {
      armed = true;
      button.textContent = confirm;
      setTimeout(() => { armed = false; button.textContent = label; }, 5000);
      return;
    }
    await action();
  });
}

/**
 * Copies `node`'s text to the clipboard; where the clipboard is refused, selects it for
 * Ctrl+C instead. Whether it was copied.
 */
export async function copyOrSelect(node) {
  try {
    await navigator.clipboard.writeText(node.textContent);
    return true;
  } catch {
    const range = document.createRange();
    range.selectNodeContents(node);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    return false;
  }
}
