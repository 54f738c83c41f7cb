// Admin: the desk's labels (GET /api/labels), each with its colour, renamed or recoloured
// in place, removed with a second press (as categories are), and the add form.

import { el, api, onSecondPress } from './dom.js';

const $ = (id) => document.getElementById(id);

/** A coloured square (set through the style object: the page's CSP allows no inline style attribute). */
function swatch(colour) {
  const square = el('span', { class: 'label-swatch', 'aria-hidden': 'true' });
  square.style.background = colour;
  return square;
}

export function labelsSection() {
  function row(l) {
    const name = el('input', { id: `label-${l.id}`, value: l.name, maxlength: 60, dataset: { testid: 'label-rename-input' } });
    const colour = el('input', { type: 'color', value: l.colour, 'aria-label': `Colour of ${l.name}`, dataset: { testid: 'label-recolour' } });
    const error = el('span', { class: 'field-error', role: 'alert' });
    const save = el('button', { type: 'button', class: 'secondary', dataset: { testid: 'label-save' } }, 'Save');
    const remove = el('button', { type: 'button', class: 'danger', dataset: { testid: 'label-remove' } }, 'Remove');
    save.addEventListener('click', async () => {
      error.textContent = '';
      const res = await api('PATCH', `/api/admin/labels/${encodeURIComponent(l.id)}`, { name: name.value, colour: colour.value });
      if (!res.ok) { error.textContent = res.error.message; name.focus(); return; }
      await load();
    });
    name.addEventListener('keydown', (e) => { if (e.key === 'Enter') save.click(); });
    // It disappears from every conversation's view, so ask once more.
    onSecondPress(remove, 'Confirm remove', async () => {
      const res = await api('DELETE', `/api/admin/labels/${encodeURIComponent(l.id)}`);
      if (!res.ok) { error.textContent = res.error.message; return; }
      await load();
    });
    return el('li', { class: 'label-row', dataset: { testid: 'label-row', id: l.id } },
      swatch(l.colour),
      el('label', { for: `label-${l.id}`, class: 'sr-only' }, `Name of ${l.name}`),
      name, colour, save, remove, error);
  }

  async function load() {
    const res = await api('GET', '/api/labels');
    if (!res.ok) { $('label-list-error').textContent = res.error.message; return; }
    $('label-list-error').textContent = '';
    $('label-rows').replaceChildren(...res.data.map(row));
  }

  $('label-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    $('l-error').textContent = '';
    const res = await api('POST', '/api/admin/labels', { name: $('l-name').value, colour: $('l-colour').value });
    if (!res.ok) { $('l-error').textContent = res.error.message; $('l-name').focus(); return; }
    $('l-name').value = '';
    await load();
  });

  load();
  return { load };
}
