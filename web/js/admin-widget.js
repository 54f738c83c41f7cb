// Admin: the chat widget's look (desk name, colour, greeting) with a live preview, and
// the snippet a site owner pastes, naming the hub's public address (PUBLIC_URL) when it
// has one, else the address this page was opened at. Saved for every node; "Use the
// server's settings" goes back to the WIDGET_* settings.

import { api, el, copyOrSelect } from './dom.js';
import { identitySection } from './admin-identity.js';

const $ = (id) => document.getElementById(id);

let chosen = [];

/** The category checkboxes, ticked for the widget's topics. */
async function topics() {
  const res = await api('GET', '/api/categories');
  const list = res.ok ? res.data : [];
  $('w-topics').replaceChildren(...list.map((c) => {
    const box = el('input', { type: 'checkbox', id: `w-topic-${c.id}`, value: c.id, dataset: { testid: `widget-topic-${c.id}` } });
    box.checked = chosen.includes(c.id);
    return el('label', { for: box.id, class: 'check' }, box, ` ${c.name}`);
  }));
}

/** Set once the admin copied the snippet (the first-run guide's last step). */
export const COPIED_KEY = 'switchboard.admin.widgetCopied';

function snippet(publicUrl) {
  $('widget-snippet').textContent = `<script src="${publicUrl || location.origin}/widget.js" async></script>`;
}

/** Copies the snippet (or, where the clipboard is refused, selects it for Ctrl+C). */
async function copySnippet() {
  const copied = await copyOrSelect($('widget-snippet'));
  $('widget-copy-status').textContent = copied ? 'Copied. Paste it into your site\'s pages.' : 'Selected: press Ctrl+C (⌘C) to copy it.';
  localStorage.setItem(COPIED_KEY, '1');
  document.dispatchEvent(new CustomEvent('first-run-changed'));
}

function fill(data) {
  if ('public_url' in data) snippet(data.public_url);
  chosen = data.categories || [];
  topics();
  $('w-title').value = data.title;
  $('w-color').value = data.color.length === 4
    ? `#${[...data.color.slice(1)].map((c) => c + c).join('')}` : data.color;
  $('w-greeting').value = data.greeting;
  $('widget-source').textContent = data.source === 'admin' ? 'Set here.' : 'From the server\'s settings.';
  preview();
}

function preview() {
  $('widget-preview').style.background = $('w-color').value;
}

export async function widgetSection() {
  $('widget-copy').addEventListener('click', copySnippet);
  identitySection();
  const res = await api('GET', '/api/admin/widget');
  if (!res.ok) snippet(null);
  if (res.ok) fill(res.data);
  $('w-color').addEventListener('input', preview);
  $('widget-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    $('widget-error').textContent = '';
    const categories = [...document.querySelectorAll('#w-topics input:checked')].map((b) => b.value);
    const put = await api('PUT', '/api/admin/widget', { title: $('w-title').value, color: $('w-color').value, greeting: $('w-greeting').value, categories });
    if (!put.ok) { $('widget-error').textContent = put.error.message; return; }
    fill(put.data);
    $('widget-source').textContent = 'Saved. New visitors see it at once.';
  });
  $('widget-reset').addEventListener('click', async () => {
    const del = await api('DELETE', '/api/admin/widget');
    if (del.ok) fill(del.data);
  });
}
