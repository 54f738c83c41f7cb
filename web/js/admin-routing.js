// Admin: each category's routing mode. Assign: the next free agent gets the chat at
// once. Offer: an agent is offered the customer and accepts or declines within the offer
// timeout (OFFER_TIMEOUT_SECS); unanswered or declined, the next agent is offered them.

import { el, api } from './dom.js';

const $ = (id) => document.getElementById(id);

/** "20 seconds", "1.5 seconds". */
function seconds(secs) {
  const n = Math.round(secs * 10) / 10;
  return `${n} second${n === 1 ? '' : 's'}`;
}

export function routingSection() {
  function row(category, mode, refresh) {
    const id = `routing-${category.id}`;
    const select = el('select', { id, dataset: { testid: 'routing-mode' }, 'aria-describedby': `${id}-status ${id}-error` },
      el('option', { value: 'assign' }, 'Assign at once'),
      el('option', { value: 'offer' }, 'Offer to an agent'));
    select.value = mode;
    const status = el('span', { id: `${id}-status`, class: 'muted', role: 'status', dataset: { testid: 'routing-status' } });
    const error = el('span', { id: `${id}-error`, class: 'field-error', role: 'alert', dataset: { testid: 'routing-error' } });
    select.addEventListener('change', async () => {
      error.textContent = '';
      status.textContent = 'Saving…';
      select.disabled = true;
      const res = await api('PUT', `/api/admin/routing/${encodeURIComponent(category.id)}`, { mode: select.value });
      select.disabled = false;
      if (!res.ok) {
        status.textContent = '';
        error.textContent = res.error.message;
        select.value = mode;
        select.focus();
        return;
      }
      mode = res.data.categories.find((c) => c.category === category.id)?.mode || select.value;
      select.value = mode;
      status.textContent = mode === 'offer' ? 'Saved: offered to agents' : 'Saved: assigned at once';
      refresh(res.data, { keep: category.id });
    });
    return el('li', { dataset: { testid: 'routing-row', id: category.id } },
      el('label', { for: id, class: 'routing-name' }, category.name), select, status, error);
  }

  let categories = [];

  function show(view, { keep } = {}) {
    $('offer-timeout').textContent = seconds(view.offer_timeout_secs);
    const modes = new Map(view.categories.map((c) => [c.category, c.mode]));
    const host = $('routing-rows');
    // The row just changed keeps its element (and its "Saved" status and focus).
    const kept = keep ? host.querySelector(`[data-testid="routing-row"][data-id="${CSS.escape(keep)}"]`) : null;
    host.replaceChildren(...categories.map((c) => (c.id === keep && kept ? kept
      : row(c, modes.get(c.id) || 'assign', show))));
  }

  return {
    async render(list) {
      categories = list;
      const res = await api('GET', '/api/admin/routing');
      $('routing-error').textContent = res.ok ? '' : res.error.message;
      if (res.ok) show(res.data);
    },
  };
}
