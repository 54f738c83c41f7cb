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
import { startProxy, createAgent, agentSignsIn, withShots, hubAndBrowser, stopAll, newPage, openPages, joinedChat, sendMessage, apiCall, adminToken, conversationRow, backToTheList } from './helpers.mjs';

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

for (const [label, size] of [['desk', { width: 1366, height: 768 }], ['phone', { width: 390, height: 844 }]]) {
  test(`a customer who left while the agent was disconnected is one row (${label})`, async () => {
    proxy.restore();
    await withShots(`left-while-away-${label}`, async (pages) => {
      const token = await adminToken(hub);
      const category = `away-${label}`;
      const made = await apiCall(hub, 'POST', '/api/admin/categories', { id: category, name: `Away ${label}` }, token);
      assert.equal(made.status, 201, JSON.stringify(made.data));
      const vera = await createAgent(hub, { username: `vera-${label}`, display_name: 'Vera', categories: [category] });
      const agent = await newPage(browser, size);
      pages.push(agent);
      await agentSignsIn(agent, { url: proxy.url }, vera);
      const [customer] = await openPages(browser, pages, [{ width: 390, height: 844 }]);
      const name = `Lena ${label}`;
      const panel = await joinedChat(customer, agent, hub, category, name);
      await sendMessage(customer, 'Back in a bit');
      await panel.getByTestId('message').filter({ hasText: 'Back in a bit' }).waitFor();
      const chatId = await panel.getAttribute('data-chat-id');

      // She closes the page; half a grace period later the agent's network goes.
      await customer.close();
      await panel.getByTestId('peer-away').waitFor({ timeout: 15000 });
      await agent.waitForTimeout(GRACE_SECS * 500);
      await agent.context().setOffline(true);
      proxy.cut();
      await agent.getByTestId('connection-state').filter({ hasText: 'reconnecting' }).waitFor({ timeout: 15000 });
      // Her grace runs out while the agent is away: the hub ends the chat, the conversation stays open.
      for (let tries = 0; ; tries += 1) {
        const read = await apiCall(hub, 'GET', `/api/conversations/${chatId}`, undefined, token);
        if (read.status === 200 && read.data.ended_at) { assert.equal(read.data.status, 'open'); break; }
        assert.ok(tries < GRACE_SECS * 5, `the hub ended the chat: ${JSON.stringify({ ...read.data, messages: undefined })}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      proxy.restore();
      await agent.context().setOffline(false);
      await agent.getByTestId('connection-state').filter({ hasText: 'online' }).waitFor({ timeout: 20000 });

      // One row: the chat's item says she left, the work list does not list it again.
      const item = agent.locator(`[data-testid="chat-list-item"][data-customer="${name}"]`);
      await item.getByTestId('chat-item-waiting').filter({ hasText: 'customer left' }).waitFor({ state: 'attached', timeout: 10000 });
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
      await agent.getByTestId('connection-state').filter({ hasText: 'online' }).waitFor({ timeout: 20000 });
      await backToTheList(agent);
      await conversationRow(agent, name).getByTestId('conversation-status').filter({ hasText: 'Open' }).waitFor();
      await agent.waitForTimeout(2500);
      assert.deepEqual(await leftColumn(agent, name), { items: [], rows: ['Status: Open'] });
    });
  });
}
