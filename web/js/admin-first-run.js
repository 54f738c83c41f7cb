// Admin: the first-run guide on the dashboard of a fresh desk — the three things that
// make it work: categories (the topics customers choose from; a new desk has some), an
// agent to answer, and the widget's snippet pasted into the site. Each step links to its
// view and is ticked once done. Shown while the desk has no agent yet (and, once shown,
// until the admin puts it away), so an established desk never sees it.

import { el } from './dom.js';
import { COPIED_KEY } from './admin-widget.js';

const $ = (id) => document.getElementById(id);
const STARTED_KEY = 'switchboard.admin.firstRunStarted';
const HIDDEN_KEY = 'switchboard.admin.firstRunHidden';

export function firstRunSection() {
  let last = { categories: [], agents: [] };

  function step(name, done, title, text, link, linkText) {
    return el('li', { class: `first-run-step${done ? ' done' : ''}`, dataset: { testid: 'first-run-step', step: name, done: String(done) } },
      el('span', { class: 'first-run-mark', 'aria-hidden': 'true' }, done ? '✓' : ''),
      el('div', { class: 'first-run-body' },
        el('strong', {}, title, el('span', { class: 'sr-only' }, done ? ' (done)' : ' (to do)')),
        el('p', { class: 'muted' }, text),
        el('a', { href: link }, linkText)));
  }

  function render(lists = last) {
    last = lists;
    const { categories, agents } = lists;
    const guide = $('first-run');
    if (localStorage.getItem(HIDDEN_KEY)) { guide.hidden = true; return; }
    if (!agents.length) localStorage.setItem(STARTED_KEY, '1');
    if (!localStorage.getItem(STARTED_KEY)) { guide.hidden = true; return; }
    const names = categories.map((c) => c.name);
    const steps = [
      step('categories', categories.length > 0, '1. Topics customers choose from',
        categories.length
          ? `Your desk has ${categories.length}: ${names.join(', ')}. Rename them, add your own, and set their chat hours.`
          : 'Add at least one category: customers pick one when they start a chat.',
        '#categories', categories.length ? 'Review the categories' : 'Add a category'),
      step('agents', agents.length > 0, '2. Someone to answer',
        agents.length
          ? `${agents.length} agent account${agents.length === 1 ? '' : 's'}. Agents sign in on the agent page (agent.html) and press “Go available”.`
          : 'Create an agent account with the categories they answer; they sign in on the agent page (agent.html).',
        '#agents', agents.length ? 'Manage agents' : 'Create an agent'),
      step('widget', !!localStorage.getItem(COPIED_KEY), '3. The chat on your site',
        'Copy the widget snippet and paste it into your site’s pages; its address must be listed in WIDGET_ALLOWED_ORIGINS.',
        '#settings', 'Get the widget snippet'),
    ];
    const done = steps.every((s) => s.dataset.done === 'true');
    $('first-run-steps').replaceChildren(...steps);
    $('first-run-state').textContent = done ? 'All set: customers can reach you.' : `${steps.filter((s) => s.dataset.done === 'true').length} of 3 done`;
    $('first-run-hide').textContent = done ? 'Done — hide this guide' : 'Hide this guide';
    guide.hidden = false;
  }

  $('first-run-hide').addEventListener('click', () => {
    localStorage.setItem(HIDDEN_KEY, '1');
    $('first-run').hidden = true;
    $('dash-title').focus();
  });
  document.addEventListener('first-run-changed', () => render());
  return { render };
}
