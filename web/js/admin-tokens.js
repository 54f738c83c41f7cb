// Admin: API tokens (GET/POST /api/admin/api-tokens): create one with a name, scopes, a
// bot's name and an expiry; its secret is shown this once with a copy button; the list
// shows each token's start, scopes and last use; revoking asks once more (second press).
// The bot's name is asked for only with the Bot scope. The form checks what it can before
// sending (a name, a scope, the bot's name) and shows each refusal at its field.

import { el, api, onSecondPress, dateTime, copyOrSelect } from './dom.js';
import { showFieldErrors, problemOf, refusalAt, clearFieldErrors } from './field-errors.js';

const $ = (id) => document.getElementById(id);
const SCOPE_TEXT = { read: 'Read', admin: 'Administer', bot: 'Bot' };

/** A time, or a dash when there is none. */
const when = (ms) => (ms ? dateTime(ms) : '—');

export function tokensSection() {
  function row(t) {
    const scopes = t.scopes.map((s) => SCOPE_TEXT[s] || s).join(', ') + (t.bot ? ` (${t.bot})` : '');
    const cells = [
      el('td', { class: 'token-name' }, t.name),
      el('td', { dataset: { label: 'Scopes' } }, scopes),
      el('td', { dataset: { label: 'Starts with' } }, el('code', {}, `${t.hint}…`)),
      el('td', { dataset: { label: 'Created' } }, when(t.created_at)),
      el('td', { dataset: { testid: 'token-last-used', label: 'Last used' } }, when(t.last_used_at)),
      el('td', { dataset: { label: 'Expires' } }, when(t.expires_at)),
    ];
    let action;
    if (t.revoked_at) {
      action = el('td', { dataset: { testid: 'token-revoked' } }, `Revoked ${dateTime(t.revoked_at)}`);
    } else {
      const revoke = el('button', { type: 'button', class: 'danger', dataset: { testid: 'token-revoke' } }, 'Revoke');
      // It stops working at once, everywhere: ask once more.
      onSecondPress(revoke, 'Confirm revoke', async () => {
        const res = await api('DELETE', `/api/admin/api-tokens/${encodeURIComponent(t.id)}`);
        if (!res.ok) { $('token-list-error').textContent = res.error.message; return; }
        await load();
      });
      action = el('td', {}, revoke);
    }
    return el('tr', { dataset: { testid: 'token-row', name: t.name } }, ...cells, action);
  }

  async function load() {
    const res = await api('GET', '/api/admin/api-tokens');
    if (!res.ok) { $('token-list-error').textContent = res.error.message; return; }
    $('token-list-error').textContent = '';
    $('token-rows').replaceChildren(...res.data.map(row));
  }

  const fields = () => [$('t-name'), $('t-scopes'), $('t-bot-name'), $('t-expires')];
  /** Where the API's refusals of the form go. */
  const fieldOf = () => ({ invalid_name: $('t-name'), invalid_scopes: $('t-scopes'), invalid_bot: $('t-bot-name'), invalid_expiry: $('t-expires') });

  // The bot's name belongs to the Bot scope: asked for only with it.
  $('t-bot').addEventListener('change', () => {
    $('t-bot-field').hidden = !$('t-bot').checked;
    if (!$('t-bot').checked) clearFieldErrors([$('t-bot-name')]);
  });

  $('token-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    $('t-error').textContent = '';
    const scopes = ['t-read', 't-admin', 't-bot'].filter((id) => $(id).checked).map((id) => $(id).value);
    const bot = $('t-bot').checked;
    const checked = showFieldErrors([
      [$('t-name'), problemOf($('t-name'), { missing: 'Please name the token, such as "CRM sync".' })],
      [$('t-scopes'), scopes.length ? null : 'Please choose at least one scope.'],
      [$('t-bot-name'), bot && !$('t-bot-name').value.trim() ? "Please enter the bot's name: the name it chats as." : null],
      [$('t-expires'), null],
    ]);
    if (!checked) return;
    const body = { name: $('t-name').value, scopes };
    if (bot) body.bot = $('t-bot-name').value;
    // The end of the chosen day, in the admin's time zone.
    if ($('t-expires').value) body.expires_at = new Date(`${$('t-expires').value}T23:59:59`).getTime();
    const res = await api('POST', '/api/admin/api-tokens', body);
    if (!res.ok) { refusalAt(res.error, fieldOf(), $('t-error')); return; }
    $('token-secret').textContent = res.data.secret;
    $('token-copy-status').textContent = '';
    $('token-secret-box').hidden = false;
    $('t-name').value = '';
    $('t-bot-name').value = '';
    $('t-expires').value = '';
    clearFieldErrors(fields());
    // Shown this once: the admin (and a screen reader) is taken to it, its copy button first,
    // as it appears (not after the list's read: a check of the focus meanwhile found it on
    // the form's button).
    $('token-copy').focus();
    await load();
  });

  $('token-copy').addEventListener('click', async () => {
    const copied = await copyOrSelect($('token-secret'));
    $('token-copy-status').textContent = copied ? 'Copied. It is not shown again.' : 'Selected: press Ctrl+C (⌘C) to copy it.';
  });

  load();
  return { load };
}
