// Nobody can chat now: the notice a customer sees before waiting (a category closed, or
// no agent holding it online), and while waiting when the hub says so (`desk_status`).
// It offers to leave a message (POST /api/offline-messages, answered by email), to wait
// anyway while the category is open, and to book a call where the category has slots.
// Shared by the customer page and the widget (both run customer.js).

import { el, api, announce } from './dom.js';
import { ownerDetails } from './visitor.js';

let formCount = 0;

/** Whether a category (as /api/categories lists it) has nobody to chat now: closed, or
 *  neither an agent nor the category's bot online. A missing `open` (a hub without
 *  business hours) counts as open. */
export function deskUnavailable(c) {
  return !!c && (c.open === false || (c.agents_online === false && !c.bot_online));
}

/** Whether the category has a free appointment slot this month or next (and so a booking link). */
export async function hasSlots(category) {
  const now = new Date();
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  for (const ahead of [0, 1]) {
    const d = new Date(now.getFullYear(), now.getMonth() + ahead, 1);
    const month = `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}`;
    const res = await api('GET', `/api/appointments/days?month=${month}&zone=${encodeURIComponent(zone)}&category=${encodeURIComponent(category)}`);
    if (!res.ok) return false;
    if (res.data.representatives > 0 && res.data.free_days.length > 0) return true;
  }
  return false;
}

/**
 * The notice with its form. `status`: {category, categoryName, open}; `onWait` (shown
 * only while the category is open) goes on to the line; `waiting`: the customer is in
 * line already and keeps their place; `heading`: 'h2' or 'h3'; `name`: a name to
 * prefill; `compact`: the form folded away behind "Leave a message instead" (a customer
 * with a transcript on screen, after a transfer, keeps it in view).
 */
export function offlineDesk({ category, categoryName, open = true, onWait, waiting = false, heading = 'h2', name = '', compact = false }) {
  const n = ++formCount;
  const id = (what) => `offline-${what}-${n}`;
  const title = open === false ? `${categoryName} is closed now` : `Nobody is online in ${categoryName} right now`;
  const lead = waiting
    ? 'You keep your place in line. If you prefer, leave a message and we will answer by email.'
    : open === false
      ? 'Leave a message and we will answer by email.'
      : 'Leave a message and we will answer by email, or wait in line for the next agent.';
  const error = el('p', { class: 'form-error', id: id('error'), role: 'alert', dataset: { testid: 'offline-error' } });
  const field = (label, input) => [el('label', { for: input.id }, label), input];
  const nameInput = el('input', { id: id('name'), name: 'name', maxlength: '100', autocomplete: 'name', required: true, dataset: { testid: 'offline-name' } });
  nameInput.value = name;
  const emailInput = el('input', { id: id('email'), name: 'email', type: 'email', maxlength: '254', autocomplete: 'email', required: true, dataset: { testid: 'offline-email' } });
  const textInput = el('textarea', { id: id('text'), name: 'text', rows: '4', required: true, dataset: { testid: 'offline-text' } });
  const send = el('button', { type: 'submit', dataset: { testid: 'offline-send' } }, 'Leave a message');
  const form = el('form', { class: 'offline-form', novalidate: true, dataset: { testid: 'offline-form' }, 'aria-describedby': id('error') },
    ...field('Your name', nameInput), ...field('Your email', emailInput), ...field('Your message', textInput), error,
    el('div', { class: 'row' }, send));
  const sent = el('p', { class: 'offline-sent', role: 'status', dataset: { testid: 'offline-sent' }, hidden: true });
  const actions = el('div', { class: 'row offline-actions' });
  if (open !== false && onWait) {
    actions.append(el('button', { type: 'button', class: 'secondary', dataset: { testid: 'wait-anyway' }, onclick: onWait }, 'Wait anyway'));
  }
  const body = compact
    ? el('details', { class: 'offline-fold', dataset: { testid: 'offline-fold' } }, el('summary', {}, 'Leave a message instead'), form)
    : form;
  const root = el('div', { class: `offline-desk${compact ? ' compact' : ''}`, role: 'region', 'aria-labelledby': id('title'), dataset: { testid: 'offline-desk', category } },
    el(heading, { id: id('title'), dataset: { testid: 'offline-title' } }, title),
    el('p', { class: 'muted' }, lead), body, sent, actions);
  hasSlots(category).then((yes) => {
    if (!yes) return;
    actions.append(el('a', { class: 'button secondary', href: `/book.html?category=${encodeURIComponent(category)}`, target: window.parent !== window ? '_blank' : null, rel: window.parent !== window ? 'noopener' : null, dataset: { testid: 'book-instead' } }, 'Book a call instead'));
  });

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    // With the browser's key (and the site's identity): the message is also a conversation
    // this customer finds under "Your conversations" and continues when they come back.
    const body = { category, name: nameInput.value.trim(), email: emailInput.value.trim(), text: textInput.value.trim(), ...ownerDetails() };
    if (!body.name) { error.textContent = 'Please tell us your name.'; nameInput.focus(); return; }
    if (!emailInput.checkValidity() || !body.email) { error.textContent = 'Please give an email address like name@example.com.'; emailInput.focus(); return; }
    if (!body.text) { error.textContent = 'Please write your message.'; textInput.focus(); return; }
    send.disabled = true;
    const res = await api('POST', '/api/offline-messages', body);
    send.disabled = false;
    if (!res.ok) {
      error.textContent = res.error.message;
      (res.error.code === 'invalid_email' ? emailInput : res.error.code === 'invalid_name' ? nameInput : textInput).focus();
      return;
    }
    form.hidden = true;
    if (compact) body.hidden = true;
    sent.textContent = `Thank you — your message is with us. We'll answer by email at ${body.email}.`;
    sent.hidden = false;
    announce(sent.textContent);
  });
  return root;
}
