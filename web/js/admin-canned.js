// Admin: the desk's canned replies (#canned): the list, and one form to add or edit a
// reply (shortcut, title, text, and the categories it is for: none checked means all).
// Agents insert them by typing "/" in a chat.

import { el, api, announce } from './dom.js';

const $ = (id) => document.getElementById(id);

export function cannedSection() {
  let categories = [];
  let editing = null;
  const rows = $('canned-rows');
  const form = $('canned-form');
  const boxes = $('canned-categories');
  const error = $('canned-error');

  function categoryNames(ids) {
    if (!ids.length) return 'all categories';
    return ids.map((id) => categories.find((c) => c.id === id)?.name || id).join(', ');
  }
  function renderBoxes(checked = []) {
    boxes.replaceChildren(el('legend', {}, 'For categories (none checked: all)'), ...categories.map((c) => el('label', { class: 'inline-check' },
      el('input', { type: 'checkbox', value: c.id, checked: checked.includes(c.id), dataset: { testid: `canned-category-${c.id}` } }), ` ${c.name}`)));
  }
  function reset() {
    editing = null;
    form.reset();
    renderBoxes();
    $('canned-save').textContent = 'Add reply';
    $('canned-cancel').hidden = true;
    error.textContent = '';
  }
  async function load() {
    const res = await api('GET', '/api/admin/canned-replies');
    if (!res.ok) { error.textContent = res.error.message; return; }
    rows.replaceChildren(...(res.data.length ? res.data.map((r) => el('tr', { dataset: { testid: 'canned-row', shortcut: r.shortcut } },
      el('td', {}, el('code', {}, `/${r.shortcut}`)), el('td', {}, r.title), el('td', { class: 'canned-text' }, r.text),
      el('td', {}, categoryNames(r.categories)),
      el('td', {}, el('div', { class: 'row' },
        el('button', { type: 'button', class: 'secondary', 'aria-label': `Edit /${r.shortcut}`, dataset: { testid: 'canned-edit' }, onclick: () => {
          editing = r;
          $('canned-shortcut').value = r.shortcut; $('canned-title').value = r.title; $('canned-text').value = r.text;
          renderBoxes(r.categories);
          $('canned-save').textContent = 'Save'; $('canned-cancel').hidden = false;
          $('canned-shortcut').focus();
        } }, 'Edit'),
        el('button', { type: 'button', class: 'danger', 'aria-label': `Delete /${r.shortcut}`, dataset: { testid: 'canned-delete' }, onclick: async () => {
          const del = await api('DELETE', `/api/admin/canned-replies/${encodeURIComponent(r.id)}`);
          if (!del.ok && del.status !== 404) { error.textContent = del.error.message; return; }
          announce(`Deleted /${r.shortcut}`);
          if (editing?.id === r.id) reset();
          load();
        } }, 'Delete'))))) : [el('tr', {}, el('td', { colspan: '5', class: 'muted' }, 'No canned replies yet.'))]));
  }
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    const body = {
      shortcut: $('canned-shortcut').value.trim(),
      title: $('canned-title').value,
      text: $('canned-text').value,
      categories: [...boxes.querySelectorAll('input:checked')].map((b) => b.value),
    };
    const res = editing
      ? await api('PUT', `/api/admin/canned-replies/${encodeURIComponent(editing.id)}`, body)
      : await api('POST', '/api/admin/canned-replies', body);
    if (!res.ok) { error.textContent = res.error.message; return; }
    announce(`Saved /${body.shortcut}`);
    reset();
    load();
  });
  $('canned-cancel').addEventListener('click', reset);
  return {
    /** The categories changed (or were loaded): the checkboxes and names follow. */
    setCategories(list) {
      categories = list;
      if (!editing) renderBoxes();
      load();
    },
    load,
  };
}
