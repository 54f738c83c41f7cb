// Admin: each category's bot (GET/PUT /api/admin/category-bots): the bot its customers
// talk to first, chosen among the names the desk's live bot API tokens act as, or none.
// The names are read again each time the Categories view opens, so a bot token just
// created on the API tokens view is offered at once. Below, each such bot's webhook URL
// (GET/PUT/DELETE /api/admin/bot-hooks): set, its signing secret shown once, or removed.

import { el, api, copyOrSelect } from './dom.js';

const $ = (id) => document.getElementById(id);
const NONE = '';

export function categoryBotsSection() {
  let categories = [];
  /** The bot names live tokens act as, sorted. */
  let names = [];

  function options(current) {
    // A category may name a bot no live token acts as (revoked, or set through the API):
    // it is still shown, said to have no token, so the admin sees what is set.
    const all = current && !names.includes(current) ? [...names, current] : names;
    return [el('option', { value: NONE }, 'No bot: straight to the line'),
      ...all.map((n) => el('option', { value: n }, names.includes(n) ? n : `${n} (no live token)`))];
  }

  function row(category, bot, refresh, online) {
    const id = `bot-${category.id}`;
    const select = el('select', { id, dataset: { testid: 'category-bot' }, 'aria-describedby': `${id}-status ${id}-error` },
      ...options(bot));
    select.value = bot || NONE;
    const status = el('span', { id: `${id}-status`, class: 'muted', role: 'status', dataset: { testid: 'category-bot-status' } },
      bot ? `Bot: ${bot} — ${online ? 'online' : 'not connected: customers go straight to the line'}` : '');
    const error = el('span', { id: `${id}-error`, class: 'field-error', role: 'alert', dataset: { testid: 'category-bot-error' } });
    select.addEventListener('change', async () => {
      error.textContent = '';
      status.textContent = 'Saving…';
      select.disabled = true;
      const res = await api('PUT', `/api/admin/category-bots/${encodeURIComponent(category.id)}`, { bot: select.value || null });
      select.disabled = false;
      if (!res.ok) {
        status.textContent = '';
        error.textContent = res.error.message;
        select.value = bot || NONE;
        select.focus();
        return;
      }
      bot = res.data.categories.find((c) => c.category === category.id)?.bot || null;
      select.value = bot || NONE;
      status.textContent = bot ? `Saved: ${bot} answers first` : 'Saved: no bot';
      refresh(res.data, { keep: category.id });
    });
    return el('li', { dataset: { testid: 'category-bot-row', id: category.id, bot: bot || '' } },
      el('label', { for: id, class: 'routing-name' }, category.name), select, status, error);
  }

  function show(view, { keep } = {}) {
    $('bot-timeout').textContent = `${Math.round(view.reply_timeout_secs * 10) / 10} seconds`;
    const bots = new Map(view.categories.map((c) => [c.category, c.bot]));
    const online = new Map(view.categories.map((c) => [c.category, c.online]));
    const host = $('category-bot-rows');
    // The row just changed keeps its element (its "Saved" status and focus); its data-bot
    // says what is set now.
    const kept = keep ? host.querySelector(`[data-testid="category-bot-row"][data-id="${CSS.escape(keep)}"]`) : null;
    if (kept) kept.dataset.bot = bots.get(keep) || '';
    host.replaceChildren(...categories.map((c) => (c.id === keep && kept ? kept : row(c, bots.get(c.id), show, online.get(c.id)))));
  }

  /** One bot's URL: set (its secret shown once) or removed. */
  function hookRow(hook) {
    const id = `hook-${hook.bot}`;
    const input = el('input', { id, type: 'url', maxlength: '2000', placeholder: 'https://bots.example.com/faq',
      dataset: { testid: 'bot-hook-url' }, 'aria-describedby': `${id}-status ${id}-error` });
    input.value = hook.url || '';
    const status = el('span', { id: `${id}-status`, class: 'muted', role: 'status', dataset: { testid: 'bot-hook-status' } },
      hook.url ? 'Called by webhook' : 'Connects to /ws/bot');
    const error = el('span', { id: `${id}-error`, class: 'field-error', role: 'alert', dataset: { testid: 'bot-hook-error' } });
    const save = el('button', { type: 'button', dataset: { testid: 'bot-hook-save' } }, 'Set URL');
    const remove = el('button', { type: 'button', class: 'secondary', dataset: { testid: 'bot-hook-remove' }, hidden: !hook.url },
      'Remove URL');
    const path = `/api/admin/bot-hooks/${encodeURIComponent(hook.bot)}`;
    save.addEventListener('click', async () => {
      error.textContent = '';
      const res = await api('PUT', path, { url: input.value });
      if (!res.ok) { error.textContent = res.error.message; input.focus(); return; }
      $('bot-hook-secret').textContent = res.data.secret;
      $('bot-hook-copy-status').textContent = '';
      $('bot-hook-secret-box').hidden = false;
      status.textContent = 'Saved: called by webhook';
      remove.hidden = false;
      // Shown this once: the admin (and a screen reader) is taken to it, its copy button first.
      $('bot-hook-copy').focus();
    });
    remove.addEventListener('click', async () => {
      error.textContent = '';
      const res = await api('DELETE', path);
      if (!res.ok) { error.textContent = res.error.message; return; }
      input.value = '';
      status.textContent = 'Removed: connects to /ws/bot';
      remove.hidden = true;
      save.focus();
    });
    return el('li', { dataset: { testid: 'bot-hook-row', bot: hook.bot } },
      el('label', { for: id, class: 'routing-name' }, hook.bot), input, save, remove, status, error);
  }

  async function render(list = categories) {
    categories = list;
    const [view, tokens, hooks] = await Promise.all([api('GET', '/api/admin/category-bots'),
      api('GET', '/api/admin/api-tokens'), api('GET', '/api/admin/bot-hooks')]);
    const res = [view, tokens, hooks].find((r) => !r.ok) || view;
    $('category-bot-error').textContent = res.ok ? '' : res.error.message;
    if (!res.ok) return;
    names = [...new Set(tokens.data.filter((t) => t.bot && !t.revoked_at).map((t) => t.bot))].sort();
    show(view.data);
    $('bot-hook-rows').replaceChildren(...hooks.data.map(hookRow));
  }

  $('bot-hook-copy').addEventListener('click', async () => {
    const copied = await copyOrSelect($('bot-hook-secret'));
    $('bot-hook-copy-status').textContent = copied ? 'Copied. It is not shown again.' : 'Selected: press Ctrl+C (⌘C) to copy it.';
  });

  document.addEventListener('admin-view', (e) => { if (e.detail === 'categories') render(); });
  return { render };
}
