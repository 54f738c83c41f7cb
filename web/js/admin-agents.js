// Admin: the agents table and the create/edit form. Server errors are put next
// to the field they concern, keyed by the API's error code.

import { el, api } from './dom.js';

const $ = (id) => document.getElementById(id);
/** API error code → the field whose error line shows it. */
const FIELD_OF = {
  invalid_username: 'a-username', conflict: 'a-username',
  invalid_name: 'a-display',
  weak_password: 'a-password',
  invalid_limit: 'a-limit',
  unknown_category: 'a-categories',
};

export function agentsSection({ onChange }) {
  let editing = null;
  let categories = [];
  const form = $('agent-form');

  function clearErrors() {
    for (const id of ['a-username', 'a-display', 'a-password', 'a-categories', 'a-limit', 'a-form']) $(`${id}-error`).textContent = '';
  }

  function renderCategoryBoxes(checked = []) {
    const fs = $('a-categories');
    fs.replaceChildren(el('legend', {}, 'Categories'), ...categories.map((c) => el('label', {},
      el('input', { type: 'checkbox', value: c.id, checked: checked.includes(c.id), dataset: { testid: `agent-category-${c.id}` } }), c.name)));
  }

  function reset() {
    editing = null;
    form.reset();
    clearErrors();
    $('a-username').disabled = false;
    $('agent-form-title').textContent = 'New agent';
    $('a-password-label').textContent = 'Password (at least 8 characters)';
    $('a-submit').textContent = 'Create agent';
    $('a-cancel').hidden = true;
    renderCategoryBoxes();
  }

  function edit(a) {
    reset();
    editing = a;
    $('agent-form-title').textContent = `Edit ${a.username}`;
    $('a-username').value = a.username;
    $('a-username').disabled = true;
    $('a-display').value = a.display_name;
    $('a-password-label').textContent = 'New password (leave blank to keep)';
    $('a-limit').value = String(a.max_chats);
    $('a-submit').textContent = 'Save changes';
    $('a-cancel').hidden = false;
    renderCategoryBoxes(a.categories);
    $('agent-form-title').focus();
  }

  async function submit(e) {
    e.preventDefault();
    clearErrors();
    const body = {
      display_name: $('a-display').value,
      categories: [...$('a-categories').querySelectorAll('input:checked')].map((i) => i.value),
      max_chats: Number($('a-limit').value),
    };
    const password = $('a-password').value;
    if (password || !editing) body.password = password;
    const res = editing
      ? await api('PATCH', `/api/admin/agents/${encodeURIComponent(editing.id)}`, body)
      : await api('POST', '/api/admin/agents', { username: $('a-username').value, ...body });
    if (!res.ok) {
      const field = FIELD_OF[res.error.code] || 'a-form';
      $(`${field}-error`).textContent = res.error.message;
      if (field !== 'a-form') $(field).focus?.();
      return;
    }
    $('a-status').textContent = editing ? `Saved ${res.data.username}.` : `Created ${res.data.username}.`;
    reset();
    await onChange();
  }

  async function setEnabled(a, enabled) {
    const res = await api('PATCH', `/api/admin/agents/${encodeURIComponent(a.id)}`, { enabled });
    $('a-status').textContent = res.ok ? `${a.username} ${enabled ? 'enabled' : 'disabled'}.` : res.error.message;
    await onChange();
  }

  function row(a) {
    const names = a.categories.map((id) => categories.find((c) => c.id === id)?.name || id).join(', ') || '—';
    const toggle = a.enabled ? 'Disable' : 'Enable';
    return el('tr', { dataset: { testid: 'agent-row', username: a.username } },
      el('td', {}, el('strong', {}, a.display_name), el('br'), el('span', { class: 'muted' }, `${a.username}${a.role === 'admin' ? ' · admin' : ''}`)),
      el('td', {}, names),
      el('td', {}, String(a.max_chats)),
      el('td', {}, el('span', { class: `pill ${a.enabled ? 'available' : 'busy'}` }, a.enabled ? 'enabled' : 'disabled')),
      el('td', { class: 'row' },
        el('button', { type: 'button', class: 'secondary', dataset: { testid: 'agent-edit' }, 'aria-label': `Edit ${a.username}`, onclick: () => edit(a) }, 'Edit'),
        el('button', { type: 'button', class: a.enabled ? 'danger' : 'secondary', dataset: { testid: 'agent-toggle' }, 'aria-label': `${toggle} ${a.username}`, onclick: () => setEnabled(a, !a.enabled) }, toggle)));
  }

  form.addEventListener('submit', submit);
  $('a-cancel').addEventListener('click', reset);

  return {
    /** Reloads the table (and the checkboxes for the given categories); returns the accounts. */
    async load(cs) {
      categories = cs;
      if (!editing) renderCategoryBoxes();
      else renderCategoryBoxes([...$('a-categories').querySelectorAll('input:checked')].map((i) => i.value));
      const res = await api('GET', '/api/admin/agents');
      if (!res.ok) { $('a-form-error').textContent = res.error.message; return null; }
      $('agent-rows').replaceChildren(...res.data.map(row));
      return res.data;
    },
  };
}
