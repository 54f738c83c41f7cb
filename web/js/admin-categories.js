// Admin: category list with rename and remove, and the add form. Removing asks
// for a second press instead of confirm(), which would block the page.

import { el, api, onSecondPress } from './dom.js';

const $ = (id) => document.getElementById(id);

export function categoriesSection({ onChange }) {
  function row(c) {
    const input = el('input', { id: `cat-${c.id}`, value: c.name, dataset: { testid: 'category-rename-input' } });
    const error = el('span', { class: 'field-error', role: 'alert' });
    const rename = el('button', { type: 'button', class: 'secondary', dataset: { testid: 'category-rename' } }, 'Rename');
    const remove = el('button', { type: 'button', class: 'danger', dataset: { testid: 'category-remove' } }, 'Remove');
    rename.addEventListener('click', async () => {
      error.textContent = '';
      const res = await api('PATCH', `/api/admin/categories/${encodeURIComponent(c.id)}`, { name: input.value });
      if (!res.ok) { error.textContent = res.error.message; input.focus(); return; }
      await onChange();
    });
    input.addEventListener('keydown', (e) => { if (e.key === 'Enter') rename.click(); });
    // Waiting customers of this category are disconnected, so ask once more.
    onSecondPress(remove, 'Confirm remove', async () => {
      const res = await api('DELETE', `/api/admin/categories/${encodeURIComponent(c.id)}`);
      if (!res.ok) { error.textContent = res.error.message; return; }
      await onChange();
    });
    return el('li', { dataset: { testid: 'category-row', id: c.id } },
      el('label', { for: `cat-${c.id}`, class: 'sr-only' }, `Name of ${c.id}`),
      input, el('span', { class: 'muted' }, c.id), rename, remove, error);
  }

  $('category-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    $('c-name-error').textContent = '';
    $('c-id-error').textContent = '';
    const body = { name: $('c-name').value };
    if ($('c-id').value.trim()) body.id = $('c-id').value.trim();
    const res = await api('POST', '/api/admin/categories', body);
    if (!res.ok) {
      const field = res.error.code === 'invalid_id' || res.error.code === 'conflict' ? 'c-id' : 'c-name';
      $(`${field}-error`).textContent = res.error.message;
      $(field).focus();
      return;
    }
    e.target.reset();
    await onChange();
  });

  return {
    render(categories) {
      $('category-rows').replaceChildren(...categories.map(row));
      $('cat-list-error').textContent = categories.length ? '' : 'No categories: customers cannot start chats.';
    },
  };
}
