// The admin page shell: sign-in, the live dashboard (polls /api/admin/stats
// every 2 s while the tab is visible) and wiring of the agents, categories and
// archive sections.

import { el, api, byTestId, show } from './dom.js';
import { wireLogin, currentAccount, signOut } from './login.js';
import { createArchive } from './history.js';
import { agentsSection } from './admin-agents.js';
import { categoriesSection } from './admin-categories.js';
import { hoursSection } from './admin-hours.js';
import { routingSection } from './admin-routing.js';
import { categoryBotsSection } from './admin-category-bots.js';
import { widgetSection } from './admin-widget.js';
import { openView } from './admin-views.js';
import { cannedSection } from './admin-canned.js';
import { labelsSection } from './admin-labels.js';
import { erasureSection } from './admin-erasure.js';
import { firstRunSection } from './admin-first-run.js';
import { tokensSection } from './admin-tokens.js';
import { webhooksSection } from './admin-webhooks.js';

const $ = (id) => document.getElementById(id);
const POLL_MS = 2000;
let pollTimer = null;
let categories = [];
let archive = null;
let erasure = null;
let openConversationWired = false;
let agents = null;
let cats = null;
let hours = null;
let routing = null;
let categoryBots = null;
let widgetWired = false;
let canned = null;
let labels = null;
let tokens = null;
let webhooks = null;
let firstRun = null;
/** Account id → display name, for the dashboard's per-agent rows. */
let agentNames = new Map();

function pageNotice(text) {
  const bar = byTestId('page-notice');
  bar.textContent = text;
  show(bar, !!text);
}

function signedOut(message) {
  clearInterval(pollTimer);
  show($('console'), false);
  show($('nav'), false);
  show($('sign-out'), false);
  show($('login'), true);
  $('who').textContent = '';
  pageNotice(message || '');
}

async function signedIn(account) {
  if (account.role !== 'admin') {
    await signOut();
    signedOut('');
    $('login-error').textContent = 'This account is not an admin. Agents sign in on the agent page (agent.html).';
    return;
  }
  pageNotice('');
  show($('login'), false);
  show($('console'), true);
  show($('nav'), true);
  show($('sign-out'), true);
  $('who').textContent = account.display_name;
  agents = agents || agentsSection({ onChange: listsChanged });
  cats = cats || categoriesSection({ onChange: listsChanged });
  if (!widgetWired) { widgetWired = true; widgetSection(); }
  canned = canned || cannedSection();
  labels = labels || labelsSection();
  tokens = tokens || tokensSection();
  webhooks = webhooks || webhooksSection();
  erasure = erasure || erasureSection({ afterErasure: () => archive.refresh() });
  archive = archive || createArchive($('archive-host'), { agents: [], mineFrom: 'agent' });
  if (!openConversationWired) {
    // A call log's "Open the chat" (call-logs.js) shows that conversation here.
    document.addEventListener('open-conversation', (e) => { openView('archive'); archive.open(e.detail); });
    openConversationWired = true;
  }
  await listsChanged();
  archive.refresh();
  poll();
  clearInterval(pollTimer);
  pollTimer = setInterval(poll, POLL_MS);
}

/** Categories or agents changed: every section that lists them is refreshed. */
async function listsChanged() {
  const res = await api('GET', '/api/categories');
  if (res.ok) categories = res.data;
  const accounts = await agents.load(categories);
  agentNames = new Map((accounts || []).map((a) => [a.id, a.display_name]));
  cats.render(categories);
  hours = hours || hoursSection();
  hours.render(categories);
  routing = routing || routingSection();
  routing.render(categories);
  categoryBots = categoryBots || categoryBotsSection();
  categoryBots.render(categories);
  canned.setCategories(categories);
  archive.setLists({ categories, agents: accounts || [] });
  firstRun = firstRun || firstRunSection();
  // Only when the agents could be read: a desk whose list failed is not taken for a fresh one.
  if (accounts) firstRun.render({ categories, agents: accounts.filter((a) => a.role === 'agent') });
}

/** How each agent state reads on the dashboard, and its pill's colour. */
const STATE_TEXT = { available: 'available', full: 'at their limit', away: 'away', busy: 'finishing their chats', disconnected: 'reconnecting' };
const STATE_PILL = { available: 'available', full: 'busy', away: 'away', busy: 'busy', disconnected: 'away' };

function waitText(secs) {
  if (!secs) return '0:00';
  const s = Math.round(secs);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

async function poll() {
  if (document.visibilityState === 'hidden') return;
  const res = await api('GET', '/api/admin/stats');
  if (!res.ok) {
    if (res.status === 401 || res.status === 403) signedOut('Your session has ended. Please sign in again.');
    else $('dash-updated').textContent = `not updated: ${res.error.message}`;
    return;
  }
  const s = res.data;
  byTestId('stat-agents-online').textContent = s.agents_online;
  byTestId('stat-agents-available').textContent = s.agents_available;
  byTestId('stat-chats-active').textContent = s.chats_active;
  $('agent-states').replaceChildren(...(s.agents || []).map((a) => {
    const name = agentNames.get(a.id) || a.id;
    return el('tr', { dataset: { testid: 'agent-state', agent: a.id } },
      el('td', {}, name),
      el('td', {}, el('span', { class: `pill ${STATE_PILL[a.state] || ''}`, dataset: { testid: 'agent-state-pill' } }, a.state === 'away' && a.away_reason ? `away · ${a.away_reason}` : STATE_TEXT[a.state] || a.state)),
      el('td', {}, `${a.chats} of ${a.limit}`));
  }));
  if (!(s.agents || []).length) $('agent-states').append(el('tr', {}, el('td', { colspan: 3, class: 'muted' }, 'No agent is signed in.')));
  byTestId('stat-longest-wait').textContent = waitText(s.longest_wait_secs);
  const ids = new Set([...categories.map((c) => c.id), ...Object.keys(s.customers_waiting)]);
  $('waiting').replaceChildren(...[...ids].map((id) => el('tr', { dataset: { testid: `waiting-${id}` } },
    el('td', {}, categories.find((c) => c.id === id)?.name || id), el('td', {}, String(s.customers_waiting[id] ?? 0)),
    el('td', { dataset: { testid: `longest-${id}` } }, s.customers_waiting[id] ? waitText((s.longest_wait_by_category || {})[id] ?? 0) : '—'))));
  $('stat-extra').textContent = `${s.customers_connected} customers connected · ${s.buddies_online} on the buddy list`;
  $('dash-updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
  const mail = await api('GET', '/api/admin/inbound-mail');
  if (mail.ok) showInboundMail(mail.data);
}

/** The mailbox customers write back to (`IMAP_URL`): read, by which node, or why not. */
function showInboundMail(m) {
  const line = $('inbound-mail');
  line.hidden = !m.configured;
  if (!m.configured) return;
  const time = (ms) => new Date(ms).toLocaleTimeString();
  const by = m.reader ? ` by ${m.reader}` : '';
  const r = m.report;
  let text;
  let failing = false;
  if (m.cluster_unavailable) {
    text = 'Customer mail: cannot tell which node reads the mailbox (Redis does not answer).';
    failing = true;
  } else if (!r) {
    text = `Customer mail: the mailbox is not read yet${by}.`;
  } else if (r.up) {
    text = `Customer mail: read${by}, last look ${time(r.last_ok_at)} · ${r.delivered} mails taken in.`;
  } else {
    const last = r.last_ok_at ? ` Last read ${time(r.last_ok_at)}.` : ' It has not been read yet.';
    text = `Customer mail: the mailbox cannot be read${by} (${r.failures} tries): ${r.last_error || 'no answer'}.${last}`;
    failing = true;
  }
  line.textContent = text;
  line.className = failing ? 'notice-bar' : 'muted';
  line.dataset.state = failing ? 'failing' : 'ok';
}

wireLogin($('login'), signedIn);
$('sign-out').addEventListener('click', async () => { await signOut(); signedOut('You signed out.'); });
// A hub that cannot be reached is asked again (with backoff), not taken for "signed out".
const unreachable = (delay, error) => pageNotice(`Cannot reach the hub (${error?.message || 'no answer'}); trying again in ${Math.ceil(delay / 1000)} s…`);
currentAccount({ onRetry: unreachable }).then((account) => (account ? signedIn(account) : signedOut('')));
