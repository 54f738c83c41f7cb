// The agent console's chat offers (categories in offer mode): a card per offer above the
// inbox, with the customer's name, topic, how long they have waited (live), what they
// came about, a video-request hint and a countdown to the offer's expiry, and Accept /
// Decline. The hub ends an offer with `offer_ended` (declined, lapsed, withdrawn) or, when
// accepted, with `chat_started`; offers do not survive a dropped connection, so the
// cards go whenever the socket does.

import { el, announce, show } from './dom.js';

/** Seconds as "0:07" / "12:30". */
function minSec(secs) {
  const s = Math.max(0, Math.floor(secs));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/**
 * @param {object} opts
 * @param {HTMLElement} opts.host   the section holding the cards (hidden while empty)
 * @param {(frame:object)=>boolean} opts.send  sends a frame on the agent's socket
 * @param {(offer:object)=>void} opts.alert   sound, title and desktop notification for a new offer
 * @param {()=>void} opts.changed   the number of offers changed (the title counts them)
 * @param {()=>void} opts.focusElsewhere  where focus goes when the card holding it goes
 */
export function createOffers({ host, send, alert, changed, focusElsewhere }) {
  /** offer_id → {id, name, category, card, parts, deadline, waitedFrom, answering} */
  const offers = new Map();
  const list = el('div', { class: 'offer-list', dataset: { testid: 'offer-list' } });
  const notice = el('p', { class: 'offer-notice', role: 'status', dataset: { testid: 'offer-notice' } });
  host.append(list, notice);
  let ticker = null;
  let noticeTimer = null;

  function render() {
    show(host, offers.size > 0 || !!notice.textContent);
    if (offers.size && !ticker) ticker = setInterval(tick, 250);
    if (!offers.size && ticker) { clearInterval(ticker); ticker = null; }
    changed();
  }

  function say(text) {
    clearTimeout(noticeTimer);
    notice.textContent = text;
    if (text) noticeTimer = setTimeout(() => { notice.textContent = ''; render(); }, 20000);
    render();
  }

  function tick() {
    const now = performance.now();
    for (const o of offers.values()) {
      const left = Math.max(0, (o.deadline - now) / 1000);
      // Unknown (null) when the hub did not see the customer join: nothing rather than a guess.
      o.parts.waited.textContent = o.waitedFrom == null ? '' : `Waiting ${minSec((now - o.waitedFrom) / 1000)}`;
      o.parts.countdown.textContent = left > 0 ? `${Math.ceil(left)} s to answer` : 'Time is up';
      o.parts.bar.style.transform = `scaleX(${o.total > 0 ? left / o.total : 0})`;
      o.card.classList.toggle('urgent', left <= 5);
      // The hub decides when it lapsed; its `offer_ended` removes the card. Should it not
      // come (a frame lost), the card goes a little after its time anyway.
      if (left === 0 && now - o.deadline > 5000) remove(o.id);
    }
  }

  function answer(o, accept) {
    if (o.answering) return;
    if (!send({ type: accept ? 'accept_offer' : 'decline_offer', offer_id: o.id })) {
      say('Not connected — the offer could not be answered.');
      return;
    }
    o.answering = accept ? 'accept' : 'decline';
    o.parts.accept.disabled = true;
    o.parts.decline.disabled = true;
    o.parts.countdown.textContent = accept ? 'Accepting…' : 'Declining…';
    o.card.classList.add('answering');
  }

  function remove(id) {
    const o = offers.get(id);
    if (!o) return null;
    const hadFocus = o.card.contains(document.activeElement);
    o.card.remove();
    offers.delete(id);
    if (hadFocus) {
      // Keyboard users stay among the offers while any are left.
      const next = offers.values().next().value;
      if (next) next.parts.accept.focus(); else focusElsewhere();
    }
    render();
    return o;
  }

  function add(f) {
    if (offers.has(f.offer_id)) return;
    const id = f.offer_id;
    const name = f.customer_name;
    const category = f.category_name || f.category;
    const titleId = `offer-${id}-title`;
    const parts = {
      waited: el('span', { dataset: { testid: 'offer-waited' } }),
      countdown: el('span', { class: 'offer-countdown', dataset: { testid: 'offer-countdown' } }),
      bar: el('span', { class: 'offer-bar-fill' }),
      accept: el('button', { type: 'button', class: 'accept', 'aria-label': `Accept chat with ${name}`, dataset: { testid: 'offer-accept' } }, 'Accept'),
      decline: el('button', { type: 'button', class: 'secondary', 'aria-label': `Decline chat with ${name}`, dataset: { testid: 'offer-decline' } }, 'Decline'),
    };
    const message = f.first_message
      ? el('blockquote', { class: 'offer-message', dataset: { testid: 'offer-message' } }, f.first_message)
      : el('p', { class: 'muted offer-message none', dataset: { testid: 'offer-message' } }, 'No message given.');
    const card = el('article', { class: 'offer-card', 'aria-labelledby': titleId, dataset: { testid: 'offer-card', offerId: id, customer: name } },
      el('div', { class: 'offer-top' },
        el('h3', { id: titleId, class: 'offer-name' }, el('span', { class: 'offer-kicker' }, 'Chat offer', el('span', { class: 'sr-only' }, ': ')), el('span', { dataset: { testid: 'offer-customer' } }, name)),
        el('span', { class: 'pill', dataset: { testid: 'offer-category' } }, category),
        f.video_request ? el('span', { class: 'pill video', dataset: { testid: 'offer-video' } }, 'Wants a video call') : null),
      el('p', { class: 'offer-meta muted' }, parts.waited),
      message,
      el('div', { class: 'offer-timer' },
        el('span', { class: 'offer-bar', 'aria-hidden': 'true' }, parts.bar),
        parts.countdown),
      el('div', { class: 'offer-actions' }, parts.accept, parts.decline));
    const now = performance.now();
    const o = {
      id, name, category: f.category, card, parts, answering: null,
      total: Math.max(0, f.expires_in_secs || 0),
      deadline: now + Math.max(0, f.expires_in_secs || 0) * 1000,
      waitedFrom: f.waited_secs == null ? null : now - Math.max(0, f.waited_secs) * 1000,
    };
    parts.accept.addEventListener('click', () => answer(o, true));
    parts.decline.addEventListener('click', () => answer(o, false));
    offers.set(id, o);
    list.append(card);
    // A notice stays (it goes by itself): "You missed an offer from Dana" above Dana's new
    // offer is what the agent should read, and clearing it here hid it at once.
    tick();
    render();
    announce(`Chat offer: ${name} (${category})${f.video_request ? ', asks for a video call' : ''}. ${Math.round(o.total)} seconds to accept.`);
    alert({ id, name, category, message: f.first_message, accept: parts.accept });
  }

  return {
    get size() { return offers.size; },
    offer: add,
    ended(f) {
      const o = remove(f.offer_id);
      if (!o) return;
      if (f.reason === 'lapsed') { say(`You missed an offer from ${o.name}.`); announce(`You missed an offer from ${o.name}`); }
      else if (f.reason === 'withdrawn') say(`The offer of ${o.name} was withdrawn.`);
    },
    /**
     * A chat started: the offer it answers (`offer_id`) is over. Returns whether the agent
     * had accepted it (the chat is then theirs to open).
     */
    chatStarted(f) {
      const o = f.offer_id != null ? offers.get(String(f.offer_id)) : undefined;
      if (!o) return false;
      remove(o.id);
      return o.answering === 'accept';
    },
    /** `unknown_offer`: the offer being answered had already ended. */
    refused() {
      const o = [...offers.values()].find((x) => x.answering);
      if (o) remove(o.id);
      say(`That offer${o ? ` of ${o.name}` : ''} is no longer open.`);
    },
    /** The connection dropped (offers do not survive it) or the agent signed out. */
    clear(why = '') {
      const had = offers.size;
      for (const id of [...offers.keys()]) remove(id);
      if (had && why) say(why); else if (!why) say('');
    },
  };
}
