// The customer's rating of a chat that ended: the `rating` offer of their `chat_ended`
// frame ({token, scale}) becomes a small form — 1 to 5 stars or thumbs down/up (radio
// buttons, so arrows move and a screen reader names each), an optional comment and Send —
// then "Thanks". POST /api/ratings; a chat is rated once.

import { el, api, announce } from './dom.js';

const STARS = [1, 2, 3, 4, 5];
const THUMBS = [[1, '👍', 'Good'], [0, '👎', 'Not good']];

/** Shows the rating form for `offer` at the start of `host`; returns its element. */
export function showRating(host, offer) {
  host.querySelector('[data-testid="rating"]')?.remove();
  const stars = offer.scale !== 'thumbs';
  const choices = stars
    ? STARS.map((n) => ({ value: n, face: '★', label: `${n} star${n === 1 ? '' : 's'}` }))
    : THUMBS.map(([value, face, label]) => ({ value, face, label }));
  const error = el('p', { class: 'form-error', role: 'alert', dataset: { testid: 'rating-error' } });
  const inputs = [];
  const labels = [];
  const options = choices.map((c) => {
    const id = `rating-${c.value}`;
    const input = el('input', { type: 'radio', name: 'rating-score', id, value: String(c.value), class: 'rating-radio', dataset: { testid: `rating-${stars ? 'star' : 'thumb'}-${c.value}` } });
    const label = el('label', { for: id, class: 'rating-choice', title: c.label }, el('span', { 'aria-hidden': 'true' }, c.face), el('span', { class: 'sr-only' }, c.label));
    inputs.push(input);
    labels.push(label);
    return [input, label];
  });
  const paint = () => {
    const chosen = inputs.find((i) => i.checked);
    const score = chosen ? Number(chosen.value) : null;
    labels.forEach((label, i) => {
      const on = stars ? score !== null && choices[i].value <= score : choices[i].value === score;
      label.classList.toggle('on', on);
    });
  };
  for (const input of inputs) input.addEventListener('change', () => { error.textContent = ''; paint(); });
  const comment = el('textarea', { id: 'rating-comment', rows: 2, maxlength: '1000', dataset: { testid: 'rating-comment' } });
  const send = el('button', { type: 'submit', dataset: { testid: 'rating-send' } }, 'Send');
  const form = el('form', { class: 'rating', novalidate: true, dataset: { testid: 'rating', scale: offer.scale } },
    el('fieldset', { class: `rating-scale ${stars ? 'stars' : 'thumbs'}` },
      el('legend', {}, stars ? 'How was your chat? Rate it from 1 to 5 stars.' : 'How was your chat?'),
      el('div', { class: 'rating-choices' }, options.flat())),
    el('label', { for: comment.id }, 'Comment (optional)'), comment,
    error, send);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const chosen = inputs.find((i) => i.checked);
    if (!chosen) { error.textContent = 'Choose a rating first.'; inputs[0].focus(); return; }
    send.disabled = true;
    const res = await api('POST', '/api/ratings', { token: offer.token, score: Number(chosen.value), comment: comment.value || undefined });
    send.disabled = false;
    if (res.ok || res.error?.code === 'already_rated') {
      const thanks = el('p', { class: 'rating-thanks', role: 'status', tabindex: '-1', dataset: { testid: 'rating-thanks' } },
        res.ok ? 'Thanks for your rating!' : 'This chat was rated already. Thank you!');
      form.replaceWith(thanks);
      thanks.focus();
      announce(thanks.textContent);
      return;
    }
    error.textContent = res.error?.code === 'rating_expired'
      ? 'This chat can no longer be rated.'
      : res.error?.message || 'Your rating could not be sent; please try again.';
  });
  host.prepend(form);
  return form;
}

/** Removes a rating form or its thanks (a new chat starts). */
export function clearRating(host) {
  host.querySelector('[data-testid="rating"], [data-testid="rating-thanks"]')?.remove();
}
