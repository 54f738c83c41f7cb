// Admin: erasing a customer's data on request (in the Archive view). The admin picks how
// to find the customer (email, a conversation id, a browser key, or the user id a site
// vouched for: a verified identity) and presses "Erase…";
// a second press within a few seconds confirms (a blocking confirm() would freeze the
// page). The answer says what went; the log below lists every erasure, newest first.

import { el, api, dateTime, announce } from './dom.js';

const $ = (id) => document.getElementById(id);
/** How long the button waits for the confirming second press. */
const CONFIRM_MS = 6000;

export function erasureSection({ afterErasure }) {
  const form = $('erasure-form');
  const button = $('erasure-button');
  const error = $('erasure-error');
  const result = $('erasure-result');
  let armed = null;

  const placeholders = { email: 'carla@example.com', conversation_id: '0193…', visitor: 'the key from the customer', identifier: 'user-42' };
  $('erasure-by').addEventListener('change', () => { $('erasure-key').placeholder = placeholders[$('erasure-by').value]; disarm(); });
  $('erasure-key').addEventListener('input', disarm);

  function disarm() {
    clearTimeout(armed);
    armed = null;
    button.textContent = 'Erase…';
  }

  async function loadLog() {
    const r = await api('GET', '/api/admin/erasures?limit=50');
    if (!r.ok) return;
    const found = { email: 'email', visitor: 'browser key', identity: "site's user id", conversation: 'one conversation' };
    $('erasure-rows').replaceChildren(...r.data.items.map((e) => el('tr', { dataset: { testid: 'erasure-row' } },
      el('td', {}, dateTime(e.at)), el('td', {}, e.by), el('td', { title: `SHA-256 ${e.key_sha256}` }, found[e.found_by] || e.found_by),
      el('td', {}, String(e.erased.conversations)), el('td', {}, String(e.erased.messages)), el('td', {}, String(e.erased.notes)),
      el('td', {}, String(e.erased.ratings)), el('td', {}, String(e.erased.offline_messages)))));
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    result.textContent = '';
    const by = $('erasure-by').value;
    const key = $('erasure-key').value.trim();
    if (!key) { error.textContent = 'Say whose data to erase.'; return; }
    if (!armed) {
      button.textContent = 'Press again to erase for good';
      announce('Press Erase again to erase this customer’s data for good.');
      armed = setTimeout(disarm, CONFIRM_MS);
      return;
    }
    disarm();
    button.disabled = true;
    const r = await api('POST', '/api/admin/erasures', { [by]: key });
    button.disabled = false;
    if (!r.ok) { error.textContent = r.error.message; return; }
    const n = r.data.erased;
    const count = (k, word) => `${k} ${word}${k === 1 ? '' : 's'}`;
    result.textContent = `Erased ${count(n.conversations, 'conversation')} (${count(n.messages, 'message')}, ${count(n.notes, 'note')}, ${count(n.ratings, 'rating')}) and ${count(n.offline_messages, 'offline message')}.`;
    $('erasure-key').value = '';
    loadLog();
    afterErasure();
  });

  loadLog();
  return { refresh: loadLog };
}
