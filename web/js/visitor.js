// What the customer page and the widget tell the hub about the customer besides their
// name (see docs/protocol.md, "Customer details"): a returning-visitor key made once per
// browser and kept, so an agent sees their earlier conversations; their time zone; and
// the page they came from (the widget's host page, or the page that linked here), without
// its query or fragment, which may hold someone's tokens. In the widget, the embedding
// site may also vouch for who the customer is (`identifier` with its `identifier_hash`,
// see docs/protocol.md, "Verified identity"): sent in the join and the conversations'
// list, as given (the hub ignores it unless the hash verifies).

const VISITOR_KEY = 'switchboard.visitor';

/** This browser's returning-visitor key (made and kept on first use), or null without storage. */
export function visitorKey() {
  try {
    let key = localStorage.getItem(VISITOR_KEY);
    if (!key || !/^[A-Za-z0-9_-]{16,64}$/.test(key)) {
      key = randomKey();
      localStorage.setItem(VISITOR_KEY, key);
    }
    return key;
  } catch {
    return null; // storage blocked (a private window's iframe): nothing to recognise them by
  }
}

/** 128 random bits as 32 hex digits, from the browser's CSPRNG: `getRandomValues` exists
 * on plain-HTTP origins too (`randomUUID` does not), so the key is never guessable. */
function randomKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** The identity the embedding site passed (via the widget loader), or null. */
let identity = null;

/** Keeps the site's `{identifier, identifier_hash, name, email}` for this page and tells
 *  the page (`switchboard:identity`), which lists the customer's conversations again. */
export function setIdentity(given) {
  const text = (v) => (typeof v === 'string' && v.trim() ? v : undefined);
  identity = { identifier: text(given?.identifier), identifier_hash: text(given?.identifier_hash), name: text(given?.name), email: text(given?.email) };
  document.dispatchEvent(new CustomEvent('switchboard:identity', { detail: identity }));
}

/** The name and email the site gave, to fill in the join form ({} when none). */
export function siteGiven() {
  return { name: identity?.name, email: identity?.email };
}

/** The headers that carry the identity to `GET /api/visitor/conversations` ({} when none);
 *  the identifier percent-encoded (a header holds ASCII only). */
export function identityHeaders() {
  if (!identity?.identifier || !identity.identifier_hash) return {};
  return { 'x-identifier': encodeURIComponent(identity.identifier), 'x-identifier-hash': identity.identifier_hash };
}

/** The browser's IANA time zone, or null. */
export function timeZone() {
  try { return Intl.DateTimeFormat().resolvedOptions().timeZone || null; } catch { return null; }
}

/** An http(s) address without its query and fragment, or null. */
function bare(address) {
  try {
    const url = new URL(address);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return null;
    return `${url.origin}${url.pathname}`;
  } catch { return null; }
}

/** The page the customer came from: the widget's host page (`page` in the frame's address), else the referrer. */
export function cameFrom(params) {
  return bare(params.get('page') || '') || bare(document.referrer || '');
}

/** Who the customer is, as the hub finds their conversations by it: the browser's key and
 *  the site's identity (only those known). Sent with a `join` and an offline message. */
export function ownerDetails() {
  const details = {};
  const visitor = visitorKey();
  if (visitor) details.visitor = visitor;
  if (identity?.identifier && identity.identifier_hash) {
    details.identifier = identity.identifier;
    details.identifier_hash = identity.identifier_hash;
  }
  return details;
}

/** The details to add to a `join` frame (only those known). */
export function joinDetails(params) {
  const details = ownerDetails();
  const zone = timeZone();
  const page = cameFrom(params);
  if (zone) details.zone = zone;
  if (page) details.page = page;
  return details;
}
