// A customer who leaves while their agent's console is disconnected: the conversation stays
// the agent's, open, and it is one row in the console's left column whatever the order of
// events — the chat's item in "My chats" saying "customer left" (writable, its status in
// its header) and no work-list row for it, after a network drop; after a reload (no panel
// any more) the work-list row alone, with the same status. At desk and phone sizes. The
// agent's page goes through a TCP proxy the test cuts (Chromium's offline mode alone leaves
// an open websocket up). The grace period is long enough for the agent to come back within
// theirs after their customer's has run out: the customer leaves first, the agent drops half
// a grace period later, and is back as soon as the hub has ended the chat.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startProxy, createAgent, agentSignsIn, withShots, hubAndBrowser, stopAll, newPage, openPages, joinedChat, sendMessage, apiCall, adminToken, conversationRow, backToTheList, endsChat, comesBack, says, panelOf, waitMs } from './helpers.mjs';

const GRACE_SECS = 12;
let hub;
let proxy;
let browser;
before(async () => {
  ({ hub, browser } = await hubAndBrowser({ RESUME_GRACE_SECS: String(GRACE_SECS) }));
  proxy = await startProxy(hub);
});
after(() => stopAll(browser, proxy, hub));

/** What the left column shows of customer `name` on `page`: its "My chats" items and work-list rows, read in one step. */
function leftColumn(page, name) {
  return page.evaluate((who) => {
    const items = [...document.querySelectorAll(`[data-testid="chat-list-item"][data-customer="${CSS.escape(who)}"]`)];
    const rows = [...document.querySelectorAll(`[data-testid="conversation-item"][data-customer="${CSS.escape(who)}"]`)];
    return {
      items: items.map((i) => i.querySelector('[data-testid="chat-item-waiting"]').textContent),
      rows: rows.map((r) => r.querySelector('[data-testid="conversation-status"]').textContent),
    };
  }, name);
}

/** What the panel of customer `name` on `page` shows of its end, read in one step: its notices' texts, whether its composer takes text, whether its conversation controls (status, labels) are offered. */
function panelState(page, name) {
  return page.evaluate((who) => {
    const panel = document.querySelector(`[data-testid="chat-panel"][data-customer="${CSS.escape(who)}"]`);
    const controls = panel.querySelector('[data-testid="chat-conversation-controls"]');
    return {
      ended: [...panel.querySelectorAll('[data-testid="chat-ended"]')].map((n) => n.textContent),
      writable: !panel.querySelector('[data-testid="message-input"]').disabled,
      controls: Boolean(controls && !controls.hidden),
    };
  }, name);
}

/** Waits (up to `graces` grace periods) until the hub has ended chat `chatId`, its conversation left open. */
async function endedOpen(chatId, token, graces) {
  for (let tries = 0; ; tries += 1) {
    const read = await apiCall(hub, 'GET', `/api/conversations/${chatId}`, undefined, token);
    if (read.status === 200 && read.data.ended_at) { assert.equal(read.data.status, 'open'); return; }
    assert.ok(tries < waitMs(GRACE_SECS * 5 * graces), `the hub ended the chat: ${JSON.stringify({ ...read.data, messages: undefined })}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Cuts the agent's network (the proxy and Chromium's offline mode) until the console says so. */
async function cutOff(agent) {
  // The cut first, heard by the page before the browser goes offline: offline, Chromium
  // holds back the reset of a socket already open, and the page would not hear it.
  proxy.cut();
  await agent.getByTestId('connection-state').filter({ hasText: 'reconnecting' }).waitFor({ timeout: waitMs(15000) });
  await agent.context().setOffline(true);
}

/** Gives the agent's network back; the console online again. */
async function backOnline(agent) {
  proxy.restore();
  await agent.context().setOffline(false);
  await agent.getByTestId('connection-state').filter({ hasText: 'online' }).waitFor({ timeout: waitMs(20000) });
}

/** A category `id` and an agent Vera (`username`) serving it, signed in through the proxy on a page of `size` (kept in `pages`). */
async function veraServing(pages, { id, username, size }) {
  const token = await adminToken(hub);
  const made = await apiCall(hub, 'POST', '/api/admin/categories', { id, name: id }, token);
  assert.equal(made.status, 201, JSON.stringify(made.data));
  const vera = await createAgent(hub, { username, display_name: 'Vera', categories: [id] });
  const agent = await newPage(browser, size);
  pages.push(agent);
  await agentSignsIn(agent, { url: proxy.url }, vera);
  return { agent, token };
}

/** Customer `name`, on a phone page (kept in `pages`), joins `category` and says `text`, which
 *  the agent's console `agent` shows: her page, her chat's panel there, and the chat's id. */
async function customerSaid(pages, agent, category, name, text) {
  const [customer] = await openPages(browser, pages, [{ width: 390, height: 844 }]);
  const panel = await joinedChat(customer, agent, hub, category, name);
  await sendMessage(customer, text);
  await panel.getByTestId('message').filter({ hasText: text }).waitFor();
  const chatId = await panel.getAttribute('data-chat-id');
  return { customer, panel, chatId };
}

for (const [label, size] of [['desk', { width: 1366, height: 768 }], ['phone', { width: 390, height: 844 }]]) {
  test(`a customer who left while the agent was disconnected is one row (${label})`, async () => {
    proxy.restore();
    await withShots(`left-while-away-${label}`, async (pages) => {
      const category = `away-${label}`;
      const { agent, token } = await veraServing(pages, { id: category, username: `vera-${label}`, size });
      const name = `Lena ${label}`;
      const { customer, panel, chatId } = await customerSaid(pages, agent, category, name, 'Back in a bit');

      // She closes the page; half a grace period later the agent's network goes.
      await customer.close();
      await panel.getByTestId('peer-away').waitFor({ timeout: waitMs(15000) });
      await agent.waitForTimeout(GRACE_SECS * 500);
      await cutOff(agent);
      // Her grace runs out while the agent is away: the hub ends the chat, the conversation stays open.
      await endedOpen(chatId, token, 1);
      await backOnline(agent);

      // One row: the chat's item says she left, the work list does not list it again.
      const item = agent.locator(`[data-testid="chat-list-item"][data-customer="${name}"]`);
      await item.getByTestId('chat-item-waiting').filter({ hasText: 'customer left' }).waitFor({ state: 'attached', timeout: waitMs(10000) });
      await panel.getByTestId('chat-ended').filter({ hasText: 'stays open in your list' }).waitFor({ state: 'attached' });
      await backToTheList(agent);
      await agent.getByTestId('conversation-empty').filter({ hasText: 'Nothing here besides your chats above.' }).waitFor();
      // Held there while the list is read again (its periodic refresh, a reconnect's frames).
      await agent.waitForTimeout(2500);
      assert.deepEqual(await leftColumn(agent, name), { items: ['customer left'], rows: [] });
      // Still the agent's to write into, and its header sets its status.
      await item.click();
      await panel.getByTestId('chat-conversation-controls').getByTestId('chat-conversation-status').filter({ hasText: 'Open' }).waitFor();
      assert.equal(await panel.getByTestId('message-input').isEnabled(), true, 'writable');

      // A reload: no panel now, the work list's row alone, with the same status.
      await agent.reload();
      await agent.getByTestId('connection-state').filter({ hasText: 'online' }).waitFor({ timeout: waitMs(20000) });
      await backToTheList(agent);
      await conversationRow(agent, name).getByTestId('conversation-status').filter({ hasText: 'Open' }).waitFor();
      await agent.waitForTimeout(2500);
      assert.deepEqual(await leftColumn(agent, name), { items: [], rows: ['Status: Open'] });
    });
  });
}

// A conversation continued (its first turn over, so the archive holds a closing from then)
// and handed back to the line while its agent was away past the grace period: the hub ended
// her chat `agent_gone` and the customer waits for the next agent. Back online, the console
// says so, read-only: not "customer left" and writable, as the earlier turn's closing
// would have it.
for (const [label, size] of [['desk', { width: 1366, height: 768 }], ['phone', { width: 390, height: 844 }]]) {
  test(`a continued conversation handed back to the line while the agent was away is not "customer left" (${label})`, async () => {
    proxy.restore();
    await withShots(`handed-back-while-away-${label}`, async (pages) => {
      const category = `back-${label}`;
      const { agent } = await veraServing(pages, { id: category, username: `vera-back-${label}`, size });
      const customer = await newPage(browser, { width: 390, height: 844 });
      pages.push(customer);
      const name = `Ines ${label}`;
      const first = await joinedChat(customer, agent, hub, category, name);
      await says(customer, first, 'Where is my parcel?');
      await endsChat(customer);
      await first.getByTestId('chat-ended').waitFor();

      // She comes back in a new tab of the same browser and continues it: Vera has it again.
      const { later, row } = await comesBack(hub, pages, customer.context());
      await row.getByTestId('continue-conversation').click();
      const panel = panelOf(agent, name);
      await panel.getByTestId('chat-reopened').waitFor();
      await says(later, panel, 'Still not here');

      // Vera's network goes for longer than the grace period: Ines is handed back to the line.
      await cutOff(agent);
      await later.getByTestId('agent-gone').waitFor({ timeout: waitMs(GRACE_SECS * 3000) });
      await backOnline(agent);

      const item = agent.locator(`[data-testid="chat-list-item"][data-customer="${name}"]`);
      await panel.getByTestId('chat-ended').filter({ hasText: 'handed back to the queue' }).waitFor({ state: 'attached', timeout: waitMs(10000) });
      // Held there while the list is read again (its periodic refresh, a reconnect's frames).
      await agent.waitForTimeout(2500);
      const shown = await panelState(agent, name);
      assert.deepEqual(shown, {
        ended: ['The chat was handed back to the queue while you were disconnected.'],
        writable: false,
        controls: false,
      });
      assert.equal(await item.getByTestId('chat-item-waiting').textContent(), 'handed back');
      await backToTheList(agent);
      const column = await leftColumn(agent, name);
      assert.deepEqual(column.items, ['handed back']);
      assert.ok(column.rows.length <= 1, JSON.stringify(column));
    });
  });
}

// The customer leaves while her agent is away, and the agent stays away past the grace
// period: the hub hands her (away) back to the line (`agent_gone`), and she leaves it when
// her own grace runs out. The conversation is still the agent's, open, its customer gone:
// back online, the console says both, and it is one row, the chat's item ("customer left",
// writable, its status in its header), as when she left the chat itself.
for (const [label, size] of [['desk', { width: 1366, height: 768 }], ['phone', { width: 390, height: 844 }]]) {
  test(`a customer who left while her agent was away past the grace is one row, writable (${label})`, async () => {
    proxy.restore();
    await withShots(`gone-past-grace-${label}`, async (pages) => {
      const category = `gone-${label}`;
      const { agent, token } = await veraServing(pages, { id: category, username: `vera-gone-${label}`, size });
      const name = `Rosa ${label}`;
      const { customer, panel, chatId } = await customerSaid(pages, agent, category, name, 'One question');

      // Vera's network goes; a moment later Rosa closes her page. Vera's grace runs out
      // first (agent_gone: Rosa, away, waits in line), then Rosa's (she leaves the line).
      await cutOff(agent);
      await customer.close();
      await endedOpen(chatId, token, 3);
      await backOnline(agent);

      const item = agent.locator(`[data-testid="chat-list-item"][data-customer="${name}"]`);
      await item.getByTestId('chat-item-waiting').filter({ hasText: 'customer left' }).waitFor({ state: 'attached', timeout: waitMs(10000) });
      await agent.waitForTimeout(2500);
      assert.deepEqual(await panelState(agent, name), {
        ended: [
          'The chat was handed back to the queue while you were disconnected.',
          `${name} was handed back to the queue while you were disconnected, and left it. The conversation stays open in your list: what you write now waits for them and they see it when they come back.`,
        ],
        writable: true,
        controls: true,
      });
      await backToTheList(agent);
      assert.deepEqual(await leftColumn(agent, name), { items: ['customer left'], rows: [] });
    });
  });
}
