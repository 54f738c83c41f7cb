// The conversation archive (GET /api/conversations): a filterable, searchable, paged
// list and one conversation's transcript, each exportable as CSV or JSON
// (/api/conversations/export, /api/conversations/{id}/export). Agents see their own
// chats; admins see all and get the agent filter. A search shows the message it found,
// its words marked. An admin puts an opened conversation in an agent's list with
// "Assign to…" (the console's dialog: its category's agents, then
// POST /api/conversations/{id}/assign; a live one is refused and says so).

import { el, api, clock, dateTime } from './dom.js';
import { FileAccess, renderFiles } from './attachments.js';
import { cameByMail } from './agent-mails.js';
import { STATUS_NAMES, statusPill } from './conversation-status.js';
import { createConversationDialogs } from './agent-conversation-dialogs.js';

/** Staff fetch archived files with their session cookie. */
const archivedFiles = new FileAccess({ conversation: () => null });

const PAGE = 20;

/**
 * @param {HTMLElement} host
 * @param {{categories?: {id,name}[], agents?: {id,display_name}[], mineFrom?: string}} opts
 *   agents: present → show the agent filter (admin); mineFrom: whose messages go on the right.
 */
/** A rating as words and signs: "4 of 5 ★★★★☆" or "👍 good" / "👎 not good"; "—" when none. */
export function ratingText(rating) {
  if (!rating) return '—';
  if (rating.scale === 'thumbs') return rating.score ? '👍 good' : '👎 not good';
  return `${rating.score} of 5 ${'★'.repeat(rating.score)}${'☆'.repeat(5 - rating.score)}`;
}

/** A word as the hub's search reads it (core::search): decomposed, lower-cased, no accents. */
const fold = (word) => word.normalize('NFKD').toLowerCase().replace(/\p{Mn}/gu, '');

/** `text` as nodes, the words of `query` marked (whole words, any case, accents ignored). */
export function marked(text, query) {
  const segmenter = new Intl.Segmenter(undefined, { granularity: 'word' });
  const wanted = new Set([...segmenter.segment(query)].filter((s) => s.isWordLike).map((s) => fold(s.segment)));
  return [...segmenter.segment(text)].map((s) => (s.isWordLike && wanted.has(fold(s.segment))
    ? el('mark', {}, s.segment) : s.segment));
}

/** Downloads `path` (an export) as the file the hub names; an error message, or null. */
async function download(path) {
  let response;
  try {
    response = await fetch(path, { credentials: 'same-origin' });
  } catch {
    return 'The hub cannot be reached; try again.';
  }
  if (!response.ok) {
    const body = await response.json().catch(() => null);
    return body?.error?.message || `The export failed (${response.status}).`;
  }
  const name = /filename="([^"]+)"/.exec(response.headers.get('content-disposition') || '')?.[1] || 'export';
  const url = URL.createObjectURL(await response.blob());
  const link = el('a', { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
  return null;
}

export function createArchive(host, { categories = [], agents = null, mineFrom = 'agent' } = {}) {
  let offset = 0;
  const state = { categories, agents };
  const words = el('input', { id: 'arch-q', type: 'search', maxlength: '200', autocomplete: 'off', dataset: { testid: 'archive-q' },
    'aria-describedby': 'arch-q-help' });
  const category = el('select', { id: 'arch-category', dataset: { testid: 'archive-category' } });
  const agent = el('select', { id: 'arch-agent', dataset: { testid: 'archive-agent' } });
  const label = el('select', { id: 'arch-label', dataset: { testid: 'archive-label' } }, el('option', { value: '' }, 'Any'));
  const labelField = el('div', { hidden: true }, el('label', { for: 'arch-label' }, 'Label'), label);
  /** The desk's labels by id (GET /api/labels), for the filter and each row's names. */
  let labels = new Map();
  const statusFilter = el('select', { id: 'arch-status', dataset: { testid: 'archive-status-filter' } },
    el('option', { value: '' }, 'Any'), ...Object.entries(STATUS_NAMES).map(([value, name]) => el('option', { value }, name)));
  const from = el('input', { id: 'arch-from', type: 'date', dataset: { testid: 'archive-from' } });
  const to = el('input', { id: 'arch-to', type: 'date', dataset: { testid: 'archive-to' } });
  const status = el('p', { class: 'muted', role: 'status', dataset: { testid: 'archive-status' } });
  const body = el('tbody');
  const pageInfo = el('span', { class: 'muted', dataset: { testid: 'archive-page' } });
  const prev = el('button', { type: 'button', class: 'secondary', dataset: { testid: 'archive-prev' } }, 'Previous');
  const next = el('button', { type: 'button', class: 'secondary', dataset: { testid: 'archive-next' } }, 'Next');
  const detail = el('div', { class: 'card', hidden: true, dataset: { testid: 'archive-detail' }, tabindex: '-1' });
  // "Assign to…" is an admin's (the page with the agent filter); its answer refreshes the list.
  const dialogs = agents ? createConversationDialogs({ changed: () => refresh(), maxLen: () => 0 }) : null;

  const form = el('form', { class: 'row', 'aria-label': 'Filter conversations' },
    el('div', {}, el('label', { for: 'arch-q' }, 'Words'), words,
      el('span', { id: 'arch-q-help', class: 'sr-only' }, 'Whole words in a message or in the names; any case, accents ignored.')),
    el('div', {}, el('label', { for: 'arch-category' }, 'Category'), category),
    agents ? el('div', {}, el('label', { for: 'arch-agent' }, 'Agent'), agent) : null,
    labelField,
    el('div', {}, el('label', { for: 'arch-status' }, 'Status'), statusFilter),
    el('div', {}, el('label', { for: 'arch-from' }, 'From'), from),
    el('div', {}, el('label', { for: 'arch-to' }, 'To'), to),
    el('div', {}, el('label', { 'aria-hidden': 'true' }, '\u00a0'), el('button', { type: 'submit', dataset: { testid: 'archive-search' } }, 'Search')));
  const table = el('div', { class: 'table-wrap', tabindex: '0' }, el('table', {},
    el('thead', {}, el('tr', {}, ...['Started', 'Category', 'Customer', 'Status', 'Agent', 'Messages', 'Ended', 'Rating', ''].map((h) => el('th', { scope: 'col' }, h)))),
    body));
  const exportStatus = el('p', { class: 'muted', role: 'status', dataset: { testid: 'archive-export-status' } });
  const exportButton = (format) => el('button', { type: 'button', class: 'secondary', dataset: { testid: `archive-export-${format}` },
    onclick: () => exportFile(`/api/conversations/export?${filters({ format })}`) }, `Export ${format.toUpperCase()}`);
  host.replaceChildren(form, status, table,
    el('div', { class: 'row' }, prev, pageInfo, next, el('span', { class: 'grow' }), exportButton('csv'), exportButton('json')),
    exportStatus, detail);

  async function exportFile(path) {
    exportStatus.textContent = 'Preparing the file…';
    exportStatus.textContent = (await download(path)) || 'Downloaded.';
  }

  function fillSelects() {
    const keep = [category.value, agent.value];
    category.replaceChildren(el('option', { value: '' }, 'All'), ...state.categories.map((c) => el('option', { value: c.id }, c.name)));
    if (state.agents) agent.replaceChildren(el('option', { value: '' }, 'All'), ...state.agents.map((a) => el('option', { value: a.id }, `${a.display_name} (${a.username})`)));
    [category.value, agent.value] = keep;
  }

  /** Start of the chosen local day, or end of it, in ms. */
  const dayMs = (input, endOfDay) => {
    if (!input.value) return null;
    const [y, m, d] = input.value.split('-').map(Number);
    return endOfDay ? new Date(y, m - 1, d, 23, 59, 59, 999).getTime() : new Date(y, m - 1, d).getTime();
  };

  /** The listing's filters (and `extra`) as a query string. */
  function filters(extra) {
    const q = new URLSearchParams(extra);
    if (words.value.trim()) q.set('q', words.value.trim());
    if (category.value) q.set('category', category.value);
    if (agents && agent.value) q.set('agent_id', agent.value);
    if (label.value) q.set('label', label.value);
    if (statusFilter.value) q.set('status', statusFilter.value);
    if (dayMs(from, false) !== null) q.set('from', dayMs(from, false));
    if (dayMs(to, true) !== null) q.set('to', dayMs(to, true));
    return q;
  }

  let searched = '';
  async function refresh() {
    const q = filters({ offset, limit: PAGE });
    searched = q.get('q') || '';
    status.textContent = 'Loading…';
    const res = await api('GET', `/api/conversations?${q}`);
    if (!res.ok) {
      body.replaceChildren();
      status.textContent = res.status === 404 ? 'Conversation history is not available on this server yet.' : res.error.message;
      prev.disabled = next.disabled = true;
      pageInfo.textContent = '';
      return;
    }
    const { total, items } = res.data;
    status.textContent = total === 0 ? 'No conversations match.' : '';
    body.replaceChildren(...items.map(row));
    pageInfo.textContent = total ? `${offset + 1}–${offset + items.length} of ${total}` : '';
    prev.disabled = offset === 0;
    next.disabled = offset + items.length >= total;
  }

  function row(c) {
    const ended = c.ended_at ? `${dateTime(c.ended_at)}${c.ended_by ? ` by ${c.ended_by}` : ''}${c.reason ? ` (${c.reason})` : ''}` : 'ongoing';
    return el('tr', { dataset: { testid: 'archive-row', id: c.id } },
      el('td', {}, dateTime(c.paired_at || c.queued_at)),
      el('td', {}, categoryName(c.category) || c.kind),
      el('td', {}, c.customer_name,
        (c.labels || []).length ? el('div', { class: 'muted', dataset: { testid: 'archive-labels' } },
          c.labels.map((id) => labels.get(id)?.name || id).join(' · ')) : null,
        c.hit && searched ? el('div', { class: 'muted search-hit', dataset: { testid: 'archive-hit' } }, ...marked(c.hit.text, searched)) : null),
      el('td', {}, statusPill(c.status, 'archive-row-status')),
      el('td', {}, c.agent_name),
      el('td', {}, String(c.message_count ?? '')),
      el('td', {}, ended),
      el('td', { dataset: { testid: 'archive-rating' } }, ratingText(c.rating)),
      el('td', {}, el('button', { type: 'button', class: 'secondary', dataset: { testid: 'archive-open' }, onclick: () => open(c.id) }, 'Open')));
  }

  const categoryName = (id) => state.categories.find((c) => c.id === id)?.name || id;

  async function open(id) {
    detail.hidden = false;
    detail.replaceChildren(el('p', {}, 'Loading…'));
    const res = await api('GET', `/api/conversations/${encodeURIComponent(id)}`);
    if (!res.ok) { detail.replaceChildren(el('p', { class: 'form-error' }, res.error.message)); return; }
    const c = res.data;
    // An agent line names the agent who wrote it (the hub tells, whoever had it since; a node
    // of an older release tells only the conversation's agent).
    const by = (m) => (m.from === 'agent' ? m.agent_name || c.agent_name || 'Agent' : m.from);
    // Messages, agents' notes and transfers in time order (a note or a transfer has no seq).
    const lines = [
      ...(c.messages || []).map((m) => ({ at: m.at, node: el('li', { class: `msg ${m.from === mineFrom ? 'mine' : 'theirs'}`, dataset: { testid: 'archive-message' } },
        el('span', { class: 'sr-only' }, `${by(m)}: `), m.text,
        m.attachments?.length ? renderFiles(m.attachments, archivedFiles) : null,
        el('span', { class: 'meta', dataset: { testid: 'archive-message-by' } }, `${by(m)} · ${clock(m.at)}`), cameByMail(m)) })),
      ...(c.notes || []).map((n) => ({ at: n.at, node: el('li', { class: 'note-card', dataset: { testid: 'archive-note' } },
        el('div', { class: 'note-head' }, el('strong', {}, 'Internal note'), el('span', { class: 'note-meta' }, ` · ${n.agent_name} · ${clock(n.at)}`)),
        el('div', { class: 'note-text' }, n.text)) })),
      ...(c.transfers || []).map((t) => ({ at: t.at, node: el('li', { class: 'notice', dataset: { testid: 'archive-transfer' } },
        // Nobody had it before (an offline message taken unassigned): taken from its line.
        `${t.from_agent_id ? `${t.from_agent_name} transferred it` : `${t.to_agent_name} took it from the ${categoryName(t.to_category)} queue`}${
          !t.from_agent_id ? '' : t.to_agent_name ? ` to ${t.to_agent_name}` : ` to the ${categoryName(t.to_category)} queue`} · ${clock(t.at)}${t.note ? ` — “${t.note}”` : ''}`) })),
    ].sort((a, b) => a.at - b.at);
    const list = el('ol', { class: 'transcript', 'aria-label': 'Transcript' }, ...lines.map((l) => l.node));
    if (!c.messages?.length) list.append(el('li', { class: 'notice' }, 'No messages.'));
    const who = c.customer || {};
    const facts = [who.email ? `Email: ${who.email}` : null, who.page ? `Came from: ${who.page}` : null, who.zone ? `Time zone: ${who.zone}` : null].filter(Boolean);
    // replaceChildren writes a null out as the word "null": the parts not there are left out.
    detail.replaceChildren(...[
      el('div', { class: 'row' }, el('h3', { class: 'grow' }, `${c.customer_name} ↔ ${c.agent_name} · ${categoryName(c.category) || c.kind} · ${dateTime(c.paired_at)}`),
        ...['csv', 'json'].map((format) => el('button', { type: 'button', class: 'secondary', dataset: { testid: `archive-detail-export-${format}` },
          onclick: () => exportFile(`/api/conversations/${encodeURIComponent(id)}/export?format=${format}`) }, `Export ${format.toUpperCase()}`)),
        dialogs ? el('button', { type: 'button', class: 'secondary', dataset: { testid: 'archive-assign' },
          onclick: (e) => dialogs.assignTo({ id }, c.customer_name || 'the customer', e.currentTarget) }, 'Assign to…') : null,
        el('button', { type: 'button', class: 'secondary', onclick: () => { detail.hidden = true; } }, 'Close')),
      dialogs ? statusControl(id, c.status) : null,
      c.rating ? el('p', { dataset: { testid: 'archive-detail-rating' } }, `Customer's rating: ${ratingText(c.rating)}`,
        c.rating.comment ? ` — “${c.rating.comment}”` : '') : null,
      facts.length ? el('p', { class: 'muted', dataset: { testid: 'archive-customer' } }, facts.join(' · ')) : null,
      list].filter(Boolean));
    detail.focus();
  }

  /** An admin sets the conversation's status (PUT /api/conversations/{id}/status): a
   *  snooze takes a date and time; a live chat is refused and says so. */
  function statusControl(id, current) {
    const choice = el('select', { id: 'arch-set-status', dataset: { testid: 'archive-set-status' } },
      ...Object.entries(STATUS_NAMES).map(([value, name]) => el('option', { value, selected: value === current }, name)));
    const until = el('input', { type: 'datetime-local', id: 'arch-snooze-until', dataset: { testid: 'archive-snooze-until' } });
    const untilField = el('span', { hidden: choice.value !== 'snoozed' }, el('label', { for: 'arch-snooze-until' }, ' until '), until);
    const said = el('span', { class: 'muted', role: 'status', dataset: { testid: 'archive-set-status-said' } });
    choice.addEventListener('change', () => { untilField.hidden = choice.value !== 'snoozed'; });
    const set = el('button', { type: 'button', class: 'secondary', dataset: { testid: 'archive-set-status-button' },
      onclick: async () => {
        const body = { status: choice.value };
        if (choice.value === 'snoozed') {
          if (!until.value) { said.textContent = 'Choose when the snooze ends.'; until.focus(); return; }
          body.until = new Date(until.value).getTime();
        }
        const res = await api('PUT', `/api/conversations/${encodeURIComponent(id)}/status`, body);
        said.textContent = res.ok ? `Now ${STATUS_NAMES[res.data.status] || res.data.status}.` : res.error.message;
        if (res.ok) refresh();
      } }, 'Set status');
    return el('p', { class: 'row', dataset: { testid: 'archive-status-control' } },
      el('label', { for: 'arch-set-status' }, 'Status '), choice, untilField, set, said);
  }

  form.addEventListener('submit', (e) => { e.preventDefault(); offset = 0; refresh(); });
  // A changed filter applies at once (Search stays for keyboard users and the dates).
  for (const input of [category, agent, label, from, to]) input.addEventListener('change', () => { offset = 0; refresh(); });
  prev.addEventListener('click', () => { offset = Math.max(0, offset - PAGE); refresh(); });
  next.addEventListener('click', () => { offset += PAGE; refresh(); });
  fillSelects();
  api('GET', '/api/labels').then((res) => {
    if (!res.ok || !res.data.length) return;
    labels = new Map(res.data.map((l) => [l.id, l]));
    label.append(...res.data.map((l) => el('option', { value: l.id }, l.name)));
    labelField.hidden = false;
  });

  return {
    refresh,
    /** Shows one conversation's transcript (e.g. a call log's "Open the chat"). */
    open,
    setLists({ categories: cs, agents: as }) {
      if (cs) state.categories = cs;
      if (as && state.agents) state.agents = as;
      fillSelects();
    },
  };
}
