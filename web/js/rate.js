// The /rate page a transcript mail links to: the rating form of `rating.js` for the chat
// its `token` names (the same rating token a chat's end gives; a chat is rated once).
// The token's payload is signed, not secret: its `scale` says stars or thumbs; the hub
// checks the signature and the expiry when the rating is sent.

import { showRating } from './rating.js';

/** The claims of a JWT, unverified (the hub verifies them), or null. */
function claims(token) {
  try {
    const part = token.split('.')[1].replaceAll('-', '+').replaceAll('_', '/');
    return JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), '=')));
  } catch {
    return null;
  }
}

const token = new URLSearchParams(location.search).get('token') || '';
const found = claims(token);
const host = document.getElementById('rate-host');
if (!found || found.purpose !== 'rating') {
  document.getElementById('rate-error').textContent = 'This link is not complete. Please open it from the email again.';
} else if (found.exp && found.exp * 1000 < Date.now()) {
  document.getElementById('rate-error').textContent = 'This chat can no longer be rated: the link has expired.';
} else {
  showRating(host, { token, scale: found.scale === 'thumbs' ? 'thumbs' : 'stars' });
  host.querySelector('input')?.focus();
}
