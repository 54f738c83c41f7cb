// The sign-in form shared by the agent and admin pages. Errors go next to the
// field they concern; a refused address (403 not_whitelisted) gets its own
// plain explanation because retrying the password cannot help.

import { api } from './dom.js';
import { retryWithBackoff } from './backoff.js';

// The form itself, the same on both pages; each page's sign-in section holds only its title.
const FORM = `
      <form id="login-form" novalidate>
        <label for="username">Username</label>
        <input id="username" autocomplete="username" data-testid="username" aria-describedby="username-error">
        <p class="field-error" id="username-error" role="alert" data-testid="username-error"></p>
        <label for="password">Password</label>
        <input id="password" type="password" autocomplete="current-password" data-testid="password" aria-describedby="password-error">
        <p class="field-error" id="password-error" role="alert" data-testid="password-error"></p>
        <p class="form-error" id="login-error" role="alert" data-testid="login-error"></p>
        <button type="submit" data-testid="login-button">Sign in</button>
      </form>`;

/**
 * Puts the sign-in form (#username, #password, #username-error, #password-error,
 * #login-error) at the end of `section` and wires it.
 * @param {(account:object)=>void} onSignedIn
 */
export function wireLogin(section, onSignedIn) {
  section.insertAdjacentHTML('beforeend', FORM);
  const form = section.querySelector('#login-form');
  const $ = (id) => form.querySelector(`#${id}`);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    for (const id of ['username-error', 'password-error', 'login-error']) $(id).textContent = '';
    const username = $('username').value.trim();
    const password = $('password').value;
    if (!username) { $('username-error').textContent = 'Enter your username.'; $('username').focus(); return; }
    if (!password) { $('password-error').textContent = 'Enter your password.'; $('password').focus(); return; }
    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    const res = await api('POST', '/api/login', { username, password });
    button.disabled = false;
    if (res.ok) { $('password').value = ''; onSignedIn(res.data.account); return; }
    const { code, message } = res.error;
    if (code === 'not_whitelisted') {
      $('login-error').textContent = `Sign-in refused: ${message}. Staff can only sign in from the office network — ask your administrator.`;
    } else if (code === 'bad_credentials') {
      $('password-error').textContent = message;
      $('password').focus();
    } else if (code === 'forbidden') {
      $('login-error').textContent = `Sign-in refused: ${message}.`;
    } else {
      $('login-error').textContent = message;
    }
  });
}

/**
 * Whether this browser is signed in: `{state: 'signed_in', account}`, or
 * `{state: 'signed_out'}` only when the hub says so (401, or 403: this address
 * may not sign in), or `{state: 'unknown', error}` when the hub could not be
 * asked (network error, timeout, 5xx) — a dropped network is not a sign-out.
 */
export async function sessionStatus() {
  const res = await api('GET', '/api/me');
  if (res.ok) return { state: 'signed_in', account: res.data };
  if (res.status === 401 || res.status === 403) return { state: 'signed_out' };
  return { state: 'unknown', error: res.error };
}

/**
 * The signed-in account, or null when signed out; asks again with backoff while
 * the hub cannot be reached (`onRetry(delay, error)` may say so on the page).
 */
export function currentAccount({ onRetry } = {}) {
  return new Promise((resolve) => {
    let last = null;
    retryWithBackoff(async () => {
      last = await sessionStatus();
      if (last.state === 'signed_in') return last.account;
      if (last.state === 'signed_out') return null;
      return undefined;
    }, resolve, { onRetry: (delay) => onRetry?.(delay, last?.error) });
  });
}

export async function signOut() {
  await api('POST', '/api/logout');
}
