// The agent's conversations as a work list (GET /api/inbox): "Mine" (every conversation in
// their list until it is resolved — live ones, ones whose customer left, ones parked),
// "Unassigned" and "All" (the team's, of the categories the agent serves), by status
// (Open, Waiting on customer, Snoozed, Resolved), category and label, the longest waiting
// first. An offline message is one of its rows (no list of its own): unassigned it has
// "Assign to me" (its take) and "Reply by email" (a dialog: the reply mails the customer
// and makes it the replier's); in its holder's list "Reply by email", and its "Resolve"
// marks the message handled as well. A conversation held
// by someone else is only listed (its status and labels are its holder's). Each
// row says who, the last line and how long it has waited, relative and moving on ("Waiting
// 12 min", "2 h", "3 d"; the exact time in its title), its category for an agent of
// several (and "Offline message" for one left while nobody could chat); its status a badge
// (read "Status: Open"), its customer's name the link showing the conversation (as a Chatwoot
// card is), and one row of small actions as Chatwoot's list has them, none named as a status
// is: "Resolve", "Reopen" (a resolved one) or "Mark as open" (one waiting or snoozed), a "More" list (Waiting on customer, Snooze 1 hour, until
// tomorrow 9:00 or until a date and time chosen in a dialog), "+ Label"; and the labels it carries (each removed with its ×;
// the list filtered by one; focus stays on the row's "+ Label" after a pick). A conversation of
// this agent's with a panel in "My chats" (its customer chatting with them now, or gone or
// away with the conversation still theirs) is not listed here: it is one row, in "My chats",
// and its status and labels are set from its panel's header (`attachControls`: the same calls
// as the rows', and the same Alt shortcuts, with "Add note" and, no customer live in it,
// "Assign"); once that panel is closed it is a row here again. A conversation its snooze
// reopened is marked "Snooze ended"
// while the server says so (the inbox's snooze_ended_at); opening it tells the server it was
// seen (POST /api/conversations/{id}/opened), so a reload or another console agrees. Status
// changes go over the agent's socket (`set_conversation_status`), labels over HTTP
// (`/api/conversations/{id}/labels/{label}`); each answer, and every change made
// elsewhere (a snooze running out, a chat ending, a label put on), refreshes the list: one
// read at a time and at most one queued behind it, however many ask together (a reconnect
// and its frames are one read); the agent's own choice of view or filter is read at once.
// Each view button shows how many conversations it holds for the status and category
// shown (the list's answer counts them, by the server, as this agent may see each), read
// as part of its name ("Unassigned, 5") and refreshed with the list; a label narrows the
// list, not the counts, and a note says so while one is chosen.

import { el, api, dateTime, show, announce } from './dom.js';
import { createConversationDialogs } from './agent-conversation-dialogs.js';
import { STATUS_NAMES, statusPill } from './conversation-status.js';
import { age, refreshAges } from './waited.js';

const $ = (id) => document.getElementById(id);
const REFRESH_MS = 10000;
/** How soon after a new line the list shows it as its conversation's last. */
const LINE_RELOAD_MS = 1000;
const HOUR = 3600 * 1000;
/** How often the rows' "Waiting 12 min" move on (a minute is their finest step). */
const AGE_REFRESH_MS = 20000;

/**
 * The action setting a conversation open again, named from where it stands: "Reopen" one
 * resolved, "Mark as open" one waiting on the customer or snoozed (it was never closed).
 */
const REOPEN_WORDS = { resolved: 'Reopen', pending: 'Mark as open', snoozed: 'Mark as open' };

/** A coloured dot (set through the style object: the page's CSP allows no inline style attribute). */
function swatch(cls, colour) {
  const dot = el('span', { class: cls, 'aria-hidden': 'true' });
  dot.style.background = colour;
  return dot;
}


/**
 * Did the status `f` tell end a snooze (`before`, the status last heard)? Open again by
 * itself, nobody's answer, at or after the snooze's end by the hub's own clock (`since`),
 * so a skewed clock here changes nothing and an early "Reopen" is not taken for it.
 */
export function snoozeRanOut(before, f) {
  return before?.status === 'snoozed' && f.status === 'open' && !f.client_id
    && typeof before.snoozed_until === 'number' && f.since >= before.snoozed_until;
}

/**
 * Lists focus was put back on by the page (a row's "+ Label" after a pick), not by someone
 * about to choose in them: until pressed or typed into, their row or header is drawn anew
 * (focus kept on the new list), where a list with focus otherwise keeps it as it is.
 */
const settled = new WeakSet();
for (const type of ['pointerdown', 'keydown']) document.addEventListener(type, (e) => settled.delete(e.target), true);
/** Is someone choosing in a list in `root` (one with focus, not only put back on)? */
const choosingIn = (root) => root.contains(document.activeElement) && document.activeElement.tagName === 'SELECT' && !settled.has(document.activeElement);
/** Focus on `to`, standing for `was` (focused before): a list is `settled` unless `was` was one someone chose in. */
function refocusOn(to, was = null) {
  if (!to) return;
  if (to.tagName === 'SELECT' && (!was || was.tagName !== 'SELECT' || settled.has(was))) settled.add(to);
  to.focus();
}

/** 9:00 tomorrow, on this computer's clock. */
function tomorrowMorning() {
  const t = new Date();
  t.setDate(t.getDate() + 1);
  t.setHours(9, 0, 0, 0);
  return t.getTime();
}

export function createConversations({ send, open, inMyChats = () => false, maxLen = () => 2000, drawAttention = () => {}, onStatus = () => {},
  isLive = () => false, addNote = () => {}, assignedAway = () => null }) {
  const list = $('conversation-list');
  const filter = $('conversation-filter');
  const labelFilter = $('conversation-label-filter');
  const categoryFilter = $('conversation-category-filter');
  const viewButtons = [...document.querySelectorAll('.conversation-views button')];
  const error = $('conversation-error');
  /** Whose conversations: mine, unassigned or all. */
  let view = 'mine';
  /** The signed-in agent's account id: their rows in "All" carry their actions. */
  let me = null;
  /** The desk's labels by id (GET /api/labels), read with each load. */
  let labels = new Map();
  /** The categories the agent serves, id → name: a row names its own when there are several. */
  let categoryNames = new Map();
  let asked = 0;
  /** client id → the change asked and not answered yet ({id, name, n}): its conversation, its customer's name for the answer's announcement, its number. */
  const pending = new Map();
  /** Conversation id → its last status heard ({status, snoozed_until, name}): a snooze running out is told by it. */
  const heard = new Map();
  /**
   * The order of what this page did and heard: each status change sent, each status heard
   * and each list read begun takes the next number. A later change wins over an earlier
   * one's late word (Alt+W then Alt+Z: the answer to the first, or a list read begun
   * before the second was stored, is not drawn over the second).
   */
  let tick = 0;
  /** Conversation id → the number of the latest status change sent for it. */
  const latestSent = new Map();
  /** Conversation id → the number of the latest change sent or status heard for it: a list read begun before is older news. */
  const touched = new Map();

  const onScreen = () => !$('console').hidden;
  const dialogs = createConversationDialogs({ changed: () => load(), maxLen });

  function setStatus(c, status, until) {
    const clientId = `cs-${++asked}`;
    const n = ++tick;
    pending.set(clientId, { id: c.id, name: c.customer_name || 'the customer', n });
    latestSent.set(c.id, n);
    touched.set(c.id, n);
    error.textContent = '';
    // Pressed while the connection is down (a reconnect under way): nothing went out, so
    // nothing will answer; say so rather than leave the change silently lost.
    if (!send({ type: 'set_conversation_status', conversation_id: c.id, status, until, client_id: clientId })) {
      pending.delete(clientId);
      error.textContent = 'Not connected: the status was not changed. Reconnecting…';
    }
  }

  /**
   * Puts `label` on `c` (PUT) or takes it off (DELETE); then `refocus`, when given, finds
   * where the keyboard goes once the list and the headers are drawn anew (the select just
   * used was taken off so the redraw is not held back, and would leave focus nowhere).
   */
  async function relabel(c, method, label, refocus = null) {
    error.textContent = '';
    const res = await api(method, `/api/conversations/${encodeURIComponent(c.id)}/labels/${encodeURIComponent(label.id)}`);
    if (!res.ok) { error.textContent = res.error.message; refocusOn(refocus?.()); return; }
    announce(method === 'PUT' ? `Label ${label.name} added` : `Label ${label.name} removed`);
    // The answer is its labels now: a panel's header is drawn from them even when no list
    // read holds the conversation (its customer away or gone, and the list shows another view).
    if (res.data?.labels) {
      known.set(c.id, { ...(known.get(c.id) || c), labels: res.data.labels });
      drawHeader(c.id);
      // The new label shows now: the keyboard lands with it, not a list read later.
      refocusOn(refocus?.());
    }
    await load();
    refocusOn(refocus?.());
  }

  /**
   * Where focus goes back to in the row (or header) `scope()` after a label change: its
   * "+ Label", or (every label on) the last label's ×.
   */
  const labelFocus = (scope) => () => {
    const at = scope();
    return at?.querySelector('[data-testid$="label-add"]') || [...(at?.querySelectorAll('[data-testid$="label-remove"]') || [])].at(-1) || null;
  };
  const rowOf = (id) => () => list.querySelector(`[data-id="${CSS.escape(id)}"]`);

  /**
   * The control in `scope` (a row or a header, drawn anew) that stands for `was`, the one
   * focused before: the same one (a label's × by its label), else, for a label control
   * gone (every label on, or that one off), where `labelFocus` goes.
   */
  function sameControl(scope, was) {
    const testid = was?.dataset.testid;
    if (!scope || !testid) return null;
    const label = was.closest('[data-label]')?.dataset.label;
    const at = label ? `[data-label="${CSS.escape(label)}"] [data-testid="${CSS.escape(testid)}"]` : `[data-testid="${CSS.escape(testid)}"]`;
    return scope.querySelector(at) || (testid.includes('label') ? labelFocus(() => scope)() : null);
  }

  /** The labels `c` carries, each with its × (null when none); `prefix` names their testids, `scope` finds them again. */
  function labelChips(c, name, { prefix = 'conversation', scope = rowOf(c.id) } = {}) {
    const carried = (c.labels || []).map((id) => labels.get(id)).filter(Boolean);
    if (!carried.length) return null;
    return el('div', { class: 'row conversation-labels' }, ...carried.map((l) => el('span',
      { class: 'pill label-chip', dataset: { testid: `${prefix}-label`, label: l.id } },
      swatch('label-dot', l.colour), l.name,
      el('button', { type: 'button', class: 'label-remove', 'aria-label': `Remove label ${l.name} from ${name}`,
        dataset: { testid: `${prefix}-label-remove` }, onclick: () => relabel(c, 'DELETE', l, labelFocus(scope)) }, '×'))));
  }

  /** "+ Label": the desk's labels `c` does not carry yet (null when none is left). */
  function labelAdder(c, name, { prefix = 'conversation', scope = rowOf(c.id) } = {}) {
    const free = [...labels.values()].filter((l) => !(c.labels || []).includes(l.id));
    if (!free.length) return null;
    const add = el('select', { 'aria-label': `Add a label to ${name}`, class: 'label-add small', dataset: { testid: `${prefix}-label-add` } },
      el('option', { value: '' }, '+ Label'), ...free.map((l) => el('option', { value: l.id }, l.name)));
    add.addEventListener('change', () => {
      const l = labels.get(add.value);
      // Off the select first: the list is not redrawn under someone choosing in it; focus
      // comes back to the same row's "+ Label" (a second label is one more pick away).
      add.blur();
      if (l) relabel(c, 'PUT', l, labelFocus(scope));
    });
    return add;
  }

  /**
   * "More": the statuses other than resolved (and open, which "Reopen" sets), "Add note",
   * and "Assign to…" while no customer is live in it (a live chat is moved by a transfer).
   */
  function moreActions(c, name) {
    const choices = [];
    if (c.status !== 'resolved') {
      if (c.status !== 'pending') choices.push(el('option', { value: 'pending' }, 'Waiting on customer'));
      choices.push(el('option', { value: 'hour' }, 'Snooze for 1 hour'), el('option', { value: 'tomorrow' }, 'Snooze until tomorrow 9:00'),
        el('option', { value: 'until' }, 'Snooze until…'));
    }
    choices.push(el('option', { value: 'note' }, 'Add note'));
    if (!inMyChats(c.id)) choices.push(el('option', { value: 'assign' }, 'Assign to…'));
    const more = el('select', { 'aria-label': `More for ${name}`, class: 'small', dataset: { testid: 'conversation-more' } },
      el('option', { value: '' }, 'More…'), ...choices);
    more.addEventListener('change', () => {
      const choice = more.value;
      // Back to "More…": the list keeps no stale choice when a dialog is cancelled.
      more.value = '';
      if (choice === 'note') { dialogs.addNote(c, name, more); return; }
      if (choice === 'assign') { dialogs.assignTo(c, name, more); return; }
      if (choice === 'until') { dialogs.snoozeUntil(c, name, more, (until) => setStatus(c, 'snoozed', until)); return; }
      more.blur();
      if (choice === 'pending') setStatus(c, 'pending');
      else if (choice === 'hour') setStatus(c, 'snoozed', Date.now() + HOUR);
      else if (choice === 'tomorrow') setStatus(c, 'snoozed', tomorrowMorning());
    });
    return more;
  }

  /** "Assign to me": an unassigned offline message becomes the caller's (its take). */
  async function take(c, name) {
    error.textContent = '';
    const res = await api('POST', `/api/offline-messages/${encodeURIComponent(c.id)}/take`, {});
    if (!res.ok) { error.textContent = res.error.message; load(); return; }
    announce(`The conversation with ${name} is now yours`);
    load();
  }

  /** "Reply by email" to an offline message (the reply makes it the replier's, and handled). */
  function replyButton(c, name, button) {
    const b = button('Reply by email', 'conversation-reply', () => dialogs.replyByMail(c, name, b));
    return b;
  }

  /**
   * "Resolve" of an offline message's conversation: the message marked handled too (as the
   * admin's list of them shows it), one action as the team sees one item.
   */
  async function markHandled(c) {
    error.textContent = '';
    const res = await api('POST', `/api/offline-messages/${encodeURIComponent(c.id)}/handled`, {});
    if (!res.ok) { error.textContent = res.error.message; load(); return; }
    setStatus(c, 'resolved');
  }

  /** The row's actions when the conversation is not the caller's. */
  function othersActions(c, name, button) {
    if (c.holder) return el('p', { class: 'muted conversation-holder', dataset: { testid: 'conversation-holder' } }, c.holder_name ? `With ${c.holder_name}` : 'With another agent');
    if (c.offline) {
      return el('div', { class: 'row conversation-actions' }, button('Assign to me', 'conversation-take', () => take(c, name), false),
        replyButton(c, name, button));
    }
    return el('p', { class: 'muted conversation-holder', dataset: { testid: 'conversation-holder' } }, 'Waiting in line for an agent');
  }

  /** "Sales · " before the time, for an agent of several categories (null for one of one). */
  function categoryOf(c) {
    if (categoryNames.size < 2) return null;
    return el('span', { class: 'conversation-category', dataset: { testid: 'conversation-category' } }, `${categoryNames.get(c.category) || c.category} · `);
  }

  /**
   * How long it has been in its status, relative ("Waiting 12 min"), the exact time in its
   * title; a snooze says until when (a time ahead is read better as a date).
   */
  function waiting(c) {
    if (c.status === 'snoozed' && c.snoozed_until) {
      return el('p', { class: 'muted conversation-since', dataset: { testid: 'conversation-waiting' } }, categoryOf(c), `Snoozed until ${dateTime(c.snoozed_until)}`);
    }
    const [prefix, suffix] = { open: ['Waiting ', ''], pending: ['Waiting on customer for ', ''], resolved: ['Resolved ', ' ago'] }[c.status] || ['', ''];
    return el('p', { class: 'muted conversation-since', dataset: { testid: 'conversation-waiting' } },
      categoryOf(c),
      el('time', { datetime: new Date(c.status_since).toISOString(), title: dateTime(c.status_since),
        dataset: { ageSince: String(c.status_since), agePrefix: prefix, ageSuffix: suffix } }, `${prefix}${age(c.status_since)}${suffix}`));
  }

  function row(c) {
    const name = c.customer_name || 'Customer';
    const button = (label, testid, onclick, secondary = true) => el('button',
      { type: 'button', class: secondary ? 'secondary small' : 'small', dataset: { testid }, 'aria-label': `${label}: ${name}`, onclick }, label);
    const mine = view === 'mine' || (me && c.holder === me);
    const actions = !mine ? othersActions(c, name, button) : el('div', { class: 'row conversation-actions' },
      c.offline && c.status !== 'resolved' ? replyButton(c, name, button) : null,
      c.status === 'resolved' ? null
        : button('Resolve', 'conversation-resolve', () => (c.offline ? markHandled(c) : setStatus(c, 'resolved')), false),
      c.status === 'open' ? null : button(REOPEN_WORDS[c.status] || 'Reopen', 'conversation-reopen', () => setStatus(c, 'open')),
      moreActions(c, name),
      labelAdder(c, name));
    // The row's heading shows the conversation, as a Chatwoot card does: the customer's name
    // is the link to it (no button word beside the status to read as one).
    const heading = !mine ? el('strong', { class: 'grow conversation-name' }, name)
      : el('span', { class: 'grow conversation-name' }, el('button', { type: 'button', class: 'link conversation-open',
        'aria-label': `Show the conversation with ${name}`, dataset: { testid: 'conversation-open' },
        onclick: () => { if (c.snooze_ended_at) seen(c); open(c); } }, name));
    // The customer's own line as it is (their name heads the row); an agent's named by who
    // wrote it (the hub's `agent_name`): "You" for the holder's own in their list.
    const by = c.last_message?.agent_name;
    const last = !c.last_message ? 'No messages yet'
      : c.last_message.from === 'agent' ? `${mine && (!by || by === c.holder_name) ? 'You' : by || 'Agent'}: ${c.last_message.text}` : c.last_message.text;
    // The server marks a conversation its snooze reopened until its holder opens it.
    const woke = Boolean(c.snooze_ended_at) && c.status === 'open';
    return el('li', { class: `conversation-item${woke ? ' snooze-ended' : ''}`, dataset: { testid: 'conversation-item', id: c.id, status: c.status, customer: name } },
      el('div', { class: 'row' },
        heading,
        woke ? el('span', { class: 'pill snooze-ended-mark', dataset: { testid: 'conversation-snooze-ended' } }, 'Snooze ended') : null,
        c.offline ? el('span', { class: 'pill offline-mark', dataset: { testid: 'conversation-offline' } }, 'Offline message') : null,
        statusPill(c.status, 'conversation-status', { named: true })),
      el('p', { class: 'muted conversation-last', dataset: { testid: 'conversation-last' } }, last),
      waiting(c),
      mine ? labelChips(c, name) : null,
      actions);
  }

  /** Its holder opened `c`: the server drops its "Snooze ended" mark (for every console of theirs). */
  async function seen(c) {
    const res = await api('POST', `/api/conversations/${encodeURIComponent(c.id)}/opened`);
    if (res.ok) load();
  }

  async function loadLabels() {
    const res = await api('GET', '/api/labels');
    if (!res.ok) return;
    labels = new Map(res.data.map((l) => [l.id, l]));
    const chosen = labelFilter.value;
    labelFilter.replaceChildren(el('option', { value: '' }, 'Any'), ...res.data.map((l) => el('option', { value: l.id }, l.name)));
    labelFilter.value = labels.has(chosen) ? chosen : '';
    show($('conversation-label-filter-wrap'), labels.size > 0);
  }

  /** Each view button's count: "Mine 3" to the eye, its name "Mine, 3" to a screen reader. */
  function showCounts(counts) {
    for (const b of viewButtons) {
      const n = counts[b.dataset.view];
      const badge = b.querySelector('.view-count');
      if (!badge || typeof n !== 'number') continue;
      badge.textContent = String(n);
      badge.hidden = false;
      b.setAttribute('aria-label', `${b.firstChild.textContent.trim()}, ${n}`);
    }
    show($('conversation-counts-note'), Boolean(labelFilter.value));
  }

  /** The latest load's number: an earlier load's answer arriving after it is not shown. */
  let loads = 0;

  /**
   * Is `c` one of this agent's conversations "My chats" shows (a live chat, or one whose
   * customer left or is away, its panel still open there)? It is that one row, not listed here.
   */
  const shownAbove = (c) => (view === 'mine' || (me && c.holder === me)) && inMyChats(c.id);

  /**
   * The view buttons' counts without the conversations "My chats" shows instead (of the
   * status and category shown, as last read and heard): a count is of the rows listed.
   */
  function withoutAbove(counts) {
    const statuses = filter.value.split(',');
    const above = [...headers.keys()].filter((id) => inMyChats(id) && known.has(id))
      .map((id) => ({ ...known.get(id), status: heard.get(id)?.status ?? known.get(id).status }));
    const shown = above.filter((c) => statuses.includes(c.status) && (!categoryFilter.value || c.category === categoryFilter.value)).length;
    return { ...counts, mine: Math.max(0, counts.mine - shown), all: Math.max(0, counts.all - shown) };
  }

  /** The list read in flight, and the one queued behind it. */
  let reading = null;
  let queued = null;

  /**
   * Reads the list anew: at once when no read runs, else once when the running one is
   * answered, however many ask meanwhile (a reconnect, its frames and the timers ask
   * together: one read in flight, at most one queued). Resolves once a read begun after
   * the call is drawn.
   */
  function load() {
    if (!onScreen()) return Promise.resolve();
    if (!reading) return readNow();
    const next = () => { queued = null; return load(); };
    queued ||= reading.then(next, next);
    return queued;
  }

  /** A read begun now, whatever runs (a choice of the agent's: what runs is of an earlier one, and not drawn). */
  function readNow() {
    const started = read().finally(() => { if (reading === started) reading = null; });
    reading = started;
    return started;
  }

  /**
   * May a list read begun at `begun` say conversation `id`'s status? Not when a change of
   * it was sent or heard since, nor while one of this page's changes of it is unanswered
   * (the store may not hold it yet): what the header shows is newer.
   */
  const newsOf = (id, begun) => (touched.get(id) ?? 0) < begun && ![...pending.values()].some((p) => p.id === id);

  async function read() {
    if (!onScreen()) return;
    const number = ++loads;
    const begun = ++tick;
    await loadLabels();
    const label = labelFilter.value ? `&label=${encodeURIComponent(labelFilter.value)}` : '';
    const category = categoryFilter.value ? `&category=${encodeURIComponent(categoryFilter.value)}` : '';
    // The conversations of "My chats", whatever the list shows: their panels' headers and the counts.
    const liveAsked = [...headers.keys()].some((id) => inMyChats(id))
      ? api('GET', '/api/inbox?view=mine&status=open%2Cpending%2Csnoozed&limit=200') : null;
    const res = await api('GET', `/api/inbox?view=${view}&status=${encodeURIComponent(filter.value)}${category}${label}`);
    const liveRes = liveAsked && await liveAsked;
    if (!res.ok || number !== loads) return;
    const mineItems = [...(liveRes?.ok ? liveRes.data.items : []), ...res.data.items.filter((c) => view === 'mine' || (me && c.holder === me))];
    for (const c of mineItems) {
      known.set(c.id, c);
      if (newsOf(c.id, begun)) heard.set(c.id, { status: c.status, snoozed_until: c.snoozed_until, name: c.customer_name });
    }
    for (const c of res.data.items) {
      if (newsOf(c.id, begun)) heard.set(c.id, { status: c.status, snoozed_until: c.snoozed_until, name: c.customer_name });
    }
    showCounts(withoutAbove(res.data.counts));
    drawHeaders();
    // Someone choosing a snooze keeps the list they are choosing in, and one in a dialog
    // the row whose "More…" opened it (focus goes back there).
    if (choosingIn(list)) return;
    if (dialogs.isOpen) return;
    // Focus on a row's button stays on the same button of its row drawn anew.
    const focused = list.contains(document.activeElement) ? document.activeElement : null;
    const where = focused && focused.closest('[data-id]')?.dataset.id;
    // One row per conversation: a chat of theirs in "My chats" (live, or its customer left
    // or away; its status and labels in its panel's header) is not here a second time.
    const items = res.data.items.filter((c) => !shownAbove(c));
    list.replaceChildren(...items.map(row));
    if (where) refocusOn(sameControl(rowOf(where)(), focused), focused);
    const empty = $('conversation-empty');
    empty.textContent = items.length < res.data.items.length ? 'Nothing here besides your chats above.' : 'Nothing here.';
    show(empty, items.length === 0);
  }

  // ---- the open conversation's header: its status and labels, as its row would have them ----

  /** Conversation id → {host, name}: the header controls of each chat panel. */
  const headers = new Map();
  /** Conversation id → its inbox item as last read (this agent's): status, snooze, labels. */
  const known = new Map();

  /**
   * The controls for conversation `id` (customer `name`) in its chat panel's header, as
   * Chatwoot's conversation header has them: its status, Resolve, "Waiting on customer",
   * Snooze (1 hour, tomorrow 9:00, until a time), Reopen ("Mark as open" one waiting or
   * snoozed), "Assign" while no customer is live in it (the row's "Assign to…" dialog; a
   * live chat is handed on by the panel's "Transfer"), "Add note" (the panel's own note
   * field: `addNote`), and its labels with "+ Label". The same socket frame and HTTP calls
   * as the list's rows, each status named as the list names it (`STATUS_NAMES`); Alt+R/W/Z/O
   * do the same for the open chat (agent.js).
   */
  function attachControls(id, name) {
    const host = el('div', { class: 'row chat-conversation-controls', role: 'group', 'aria-label': `Conversation with ${name}`, dataset: { testid: 'chat-conversation-controls' } });
    headers.set(id, { host, name });
    drawHeader(id);
    loadOnceDrawn();
    return host;
  }

  let loadAsked = false;
  /**
   * Reads the list once the frame being handled is drawn: the panels a welcome brings back
   * are attached in one go, and a read begun at the first would not ask for the others'
   * conversations (one in flight, one queued: three reads where one does).
   */
  function loadOnceDrawn() {
    if (loadAsked) return;
    loadAsked = true;
    queueMicrotask(() => { loadAsked = false; load(); });
  }

  function headerControls(c, name, scope) {
    const button = (label, testid, onclick, { secondary = true, keys, title, popup } = {}) => el('button',
      { type: 'button', class: secondary ? 'secondary small' : 'small', dataset: { testid }, 'aria-label': `${label}: the conversation with ${name}`,
        'aria-keyshortcuts': keys, 'aria-haspopup': popup, title, onclick }, label);
    const snooze = el('select', { 'aria-label': `Snooze the conversation with ${name}`, class: 'small', dataset: { testid: 'chat-conversation-snooze' } },
      el('option', { value: '' }, 'Snooze…'), el('option', { value: 'hour' }, 'For 1 hour'),
      el('option', { value: 'tomorrow' }, 'Until tomorrow 9:00'), el('option', { value: 'until' }, 'Until…'));
    snooze.addEventListener('change', () => {
      const choice = snooze.value;
      snooze.value = '';
      if (choice === 'until') { dialogs.snoozeUntil(c, name, snooze, (until) => setStatus(c, 'snoozed', until)); return; }
      if (choice === 'hour') setStatus(c, 'snoozed', Date.now() + HOUR);
      else if (choice === 'tomorrow') setStatus(c, 'snoozed', tomorrowMorning());
    });
    const status = c.status === 'snoozed' && c.snoozed_until
      ? el('span', { class: 'pill conversation-status snoozed', title: `Until ${dateTime(c.snoozed_until)}`, dataset: { testid: 'chat-conversation-status', status: c.status } }, `Snoozed until ${dateTime(c.snoozed_until)}`)
      : statusPill(c.status, 'chat-conversation-status');
    return [
      status,
      c.status === 'resolved' ? null : button('Resolve', 'chat-resolve', () => (c.offline ? markHandled(c) : setStatus(c, 'resolved')), { secondary: false, keys: 'Alt+R' }),
      c.status === 'pending' || c.status === 'resolved' ? null
        : button(STATUS_NAMES.pending, 'chat-pending', () => setStatus(c, 'pending'), { keys: 'Alt+W' }),
      c.status === 'resolved' ? null : snooze,
      c.status === 'open' ? null : button(REOPEN_WORDS[c.status] || 'Reopen', 'chat-reopen', () => setStatus(c, 'open'), { keys: 'Alt+O' }),
      isLive(c.id) ? null : assignButton(c, name, button, scope),
      button('Add note', 'chat-add-note', () => addNote(c.id)),
      labelAdder(c, name, { prefix: 'chat-conversation', scope }),
      labelChips(c, name, { prefix: 'chat-conversation', scope }),
    ];
  }

  /**
   * "Assign" in a header: the "Assign to…" dialog for the conversation, focus back on this
   * button when cancelled, and on what `assignedAway` names (the panel's Close) once it is
   * another agent's.
   */
  function assignButton(c, name, button, scope) {
    const b = button('Assign', 'chat-assign', () => dialogs.assignTo(c, name, b, { then: () => assignedAway(c.id) || scope() }), { popup: 'dialog' });
    return b;
  }

  /** Draws conversation `id`'s header controls from what was last heard of it, focus kept on the same control. */
  function drawHeader(id) {
    const h = headers.get(id);
    if (!h) return;
    const active = h.host.contains(document.activeElement) ? document.activeElement : null;
    // Someone choosing in one of its lists, or in its snooze dialog: drawn at the next change.
    if (choosingIn(h.host) || (dialogs.isOpen && active)) return;
    const c = { ...(known.get(id) || { id, customer_name: h.name, labels: [], status: 'open' }) };
    const told = heard.get(id);
    if (told) Object.assign(c, { status: told.status, snoozed_until: told.snoozed_until });
    // A list read that changes nothing leaves the controls as they are: no flicker, and a
    // control someone is about to press is not swapped under their finger.
    const drawn = JSON.stringify([c.status, c.snoozed_until, c.labels, c.offline, c.customer_name, isLive(id),
      [...labels.values()].map((l) => [l.id, l.name, l.colour])]);
    if (h.drawn === drawn) return;
    h.drawn = drawn;
    h.host.replaceChildren(...headerControls(c, h.name, () => h.host).filter(Boolean));
    h.host.dataset.status = c.status;
    // The control pressed may be gone (Pending, once pending): the keyboard stays in the group.
    if (active) refocusOn(sameControl(h.host, active) || h.host.querySelector('button, select'), active);
    onStatus(id, c.status);
  }

  /** Conversation `id`'s panel is gone: its controls with it, and its row is listed again. */
  function detachControls(id) { headers.delete(id); load(); }

  function drawHeaders() {
    for (const id of [...headers.keys()]) drawHeader(id);
  }

  // The agent's choices are answered at once: the answer to a read of an earlier choice is not drawn.
  filter.addEventListener('change', readNow);
  labelFilter.addEventListener('change', readNow);
  categoryFilter.addEventListener('change', readNow);
  for (const b of viewButtons) {
    b.addEventListener('click', () => {
      view = b.dataset.view;
      for (const other of viewButtons) other.setAttribute('aria-pressed', String(other === b));
      readNow();
    });
  }

  /** The categories the agent serves ({id, name}): the category filter's choices. */
  function setCategories(categories) {
    categoryNames = new Map(categories.map((c) => [c.id, c.name]));
    const chosen = categoryFilter.value;
    categoryFilter.replaceChildren(el('option', { value: '' }, 'Any'), ...categories.map((c) => el('option', { value: c.id }, c.name)));
    categoryFilter.value = categories.some((c) => c.id === chosen) ? chosen : '';
    show($('conversation-category-filter-wrap'), categories.length > 1);
  }

  /** The signed-in agent's account id. */
  function signedIn(id) { me = id; }
  setInterval(() => { if (document.visibilityState === 'visible') load(); }, REFRESH_MS);
  // The ages move on between loads too (a list kept while someone chooses in it).
  setInterval(() => refreshAges(list), AGE_REFRESH_MS);
  new MutationObserver(() => load()).observe($('console'), { attributes: true, attributeFilter: ['hidden'] });

  /** Takes the frames this module answers; true when it did. */
  function handle(f) {
    if (f.type === 'conversation_status') {
      const mine = f.client_id && pending.get(f.client_id);
      if (mine) {
        pending.delete(f.client_id);
        announce(`The conversation with ${mine.name} is now ${(STATUS_NAMES[f.status] || f.status).toLowerCase()}`);
      }
      // The answer to a change of this page's with a later change of it sent since is
      // that later one's to draw: it comes next (or its refusal, and a list read then).
      if (mine && latestSent.get(f.conversation_id) !== mine.n) { load(); return true; }
      touched.set(f.conversation_id, ++tick);
      const before = heard.get(f.conversation_id);
      heard.set(f.conversation_id, { status: f.status, snoozed_until: f.snoozed_until, name: before?.name });
      drawHeader(f.conversation_id);
      if (snoozeRanOut(before, f)) {
        const who = before.name || 'a customer';
        announce(`The snooze of the conversation with ${who} ended: it is open again`);
        drawAttention({ title: `Snooze ended: ${who}`, body: `The conversation with ${who} is open again.`,
          tag: `snooze-${f.conversation_id}`, onClick: () => list.querySelector(`[data-id="${CSS.escape(f.conversation_id)}"] [data-testid="conversation-open"]`)?.focus() });
      }
      load();
      return true;
    }
    // Another agent's (or nobody's) snooze ran out: "All" and "Unassigned" hold it anew.
    if (f.type === 'snooze_ended') {
      load();
      return true;
    }
    if (f.type === 'error' && f.client_id && pending.has(f.client_id)) {
      pending.delete(f.client_id);
      error.textContent = f.message;
      load();
      return true;
    }
    // A new connection: the changes the old one asked for are answered to it no more (their
    // holder's word comes as any other change's), so none holds list reads back.
    if (f.type === 'agent_welcome') pending.clear();
    // A conversation put in another agent's list: the one it left and the one it entered.
    if (f.type === 'conversation_assigned') {
      const who = f.customer_name || 'the customer';
      if (f.holder === me) announce(`${f.by_name} assigned you the conversation with ${who}`);
      else if (f.from === me) announce(`The conversation with ${who} is now with ${f.holder_name}`);
      load();
      return false;
    }
    // A live chat resolved from its header is ended, not answered with a status: its change
    // is answered no more, so it holds no list read back (nor does any other of the chat's).
    if (f.type === 'chat_ended') {
      for (const [clientId, p] of pending) if (p.id === f.chat_id) pending.delete(clientId);
    }
    // A chat started or ended changes the list as well (a live chat's row leaves or comes back).
    if (f.type === 'chat_started' || f.type === 'chat_ended') setTimeout(load, 300);
    // A new line is its conversation's last line: the list follows within a second, one
    // reload for a burst of lines (not the periodic refresh's ten).
    if (f.type === 'message' || f.type === 'ack') reloadSoon();
    return false;
  }

  let reloadTimer = null;
  function reloadSoon() {
    if (reloadTimer) return;
    reloadTimer = setTimeout(() => { reloadTimer = null; load(); }, LINE_RELOAD_MS);
  }

  /**
   * Sets the status of conversation `id` (a shortcut on the open chat): `status` as the
   * list's buttons set it, `snoozed` until tomorrow 9:00.
   */
  function setStatusOf(id, name, status) {
    setStatus({ id, customer_name: name }, status, status === 'snoozed' ? tomorrowMorning() : undefined);
  }

  return { handle, load, setStatusOf, setCategories, signedIn, attachControls, detachControls, drawHeader };
}
