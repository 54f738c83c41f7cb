// The sign-in form shared by the agent and admin pages. Errors go next to the
// field they concern; a refused address (403 not_whitelisted) gets its own
// plain explanation because retrying the password cannot help.

import { api } from './dom.js';

/**
 * Wires a form with #username, #password, #username-error, #password-error, #login-error.
 * @param {(account:object)=>void} onSignedIn
 */
export function wireLogin(form, onSignedIn) {
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

/** The signed-in account, or null (also null when this address may not sign in). */
export async function currentAccount() {
  const res = await api('GET', '/api/me');
  return res.ok ? res.data : null;
}

export async function signOut() {
  await api('POST', '/api/logout');
}
