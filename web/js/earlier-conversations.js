// A returning customer's earlier conversations on the customer page and in the widget:
// the conversations started from this browser (by its visitor key, see visitor.js), and in
// the widget those of the identity the embedding site vouched for, newest first, each with its status and last line, and "Continue" to write into it again (the
// hub opens it with the same id, back to the agent who had it when they are free).

import { el } from './dom.js';
import { visitorKey, identityHeaders } from './visitor.js';

/** How many times the list was asked for. */
let asks = 0;

const STATUS_WORDS = { open: 'Open', pending: 'Waiting for your answer', snoozed: 'Open', resolved: 'Resolved' };

/** The conversations this browser started, or [] (no key, none, or the hub unreachable). */
async function ownConversations() {
  const key = visitorKey();
  if (!key) return { conversations: [], can_continue: false };
  try {
    const headers = { 'x-visitor-key': key, ...identityHeaders() };
    const res = await fetch('/api/visitor/conversations', { headers, signal: AbortSignal.timeout(10000) });
    if (!res.ok) return { conversations: [], can_continue: false };
    return await res.json();
  } catch {
    return { conversations: [], can_continue: false };
  }
}

function when(at) {
  const d = new Date(at);
  const sameDay = d.toDateString() === new Date().toDateString();
  return new Intl.DateTimeFormat([], sameDay ? { hour: '2-digit', minute: '2-digit' } : { day: 'numeric', month: 'short' }).format(d);
}

/**
 * Fills `host` (hidden while empty) with the list. `categoryName(id)` names a topic;
 * `onContinue(conversation)` is called with the chosen row. Resolves to how many are
 * listed (0 for an answer a later ask replaced).
 */
export async function showEarlierConversations(host, { categoryName, onContinue }) {
  // Asked again (the site's identity arrived): only the latest answer is shown.
  const asked = ++asks;
  const { conversations, can_continue: canContinue } = await ownConversations();
  if (asked !== asks) return 0;
  host.replaceChildren();
  host.hidden = conversations.length === 0;
  if (!conversations.length) return 0;
  const list = el('ul', { class: 'returning-list', dataset: { testid: 'earlier-list' } });
  for (const c of conversations.slice(0, 5)) {
    const last = c.last_message;
    // An agent's line is its author's (the conversation may have passed between agents).
    const line = last ? `${last.from === 'customer' ? 'You' : c.last_message_by || c.agent_name || 'Agent'}: ${last.text}` : 'No messages yet';
    const topic = categoryName(c.category) || 'Conversation';
    const button = canContinue
      ? el('button', { type: 'button', class: 'secondary', dataset: { testid: 'continue-conversation', conversation: c.id },
        'aria-label': `Continue your conversation about ${topic}`, onclick: () => onContinue(c) }, 'Continue')
      : null;
    list.append(el('li', { class: 'returning-row', dataset: { testid: 'earlier-conversation', status: c.status } },
      el('div', { class: 'returning-text' },
        el('div', { class: 'returning-head' },
          el('strong', {}, topic),
          el('span', { class: `returning-status status-${c.status}` }, STATUS_WORDS[c.status] || c.status),
          el('span', { class: 'muted returning-when' }, when(last?.at || c.started_at))),
        el('p', { class: 'returning-last muted' }, line)),
      button));
  }
  host.append(el('h3', { id: 'earlier-title' }, 'Your conversations'), list);
  return conversations.length;
}
