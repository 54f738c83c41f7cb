// Messages are shown in `seq` order, not arrival order.
// Both sides send at once: the agent's page gets the customer's earlier
// message only after it showed its own later one (the hub's frames to the
// agent are held in a proxy meanwhile, like a slow network), and must still
// show the customer's first.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { agentAndCustomerPages, startHub, startProxy, startMongo, createAgent, agentSignsIn, withShots, hubAndBrowser, stopAll, openPages, sendMessage, joinedChat, says, waitMs } from './helpers.mjs';

let hub;
let proxy;
let browser;
before(async () => {
  ({ hub, browser } = await hubAndBrowser());
  proxy = await startProxy(hub);
});
after(() => stopAll(browser, proxy, hub));

/** Each message's own text, without what the page puts beside it (author, time, screen-reader labels). */
const texts = (loc) => loc.getByTestId('message').evaluateAll((items) => items.map((item) => {
  const copy = item.cloneNode(true);
  for (const extra of copy.querySelectorAll('.meta, .sr-only')) extra.remove();
  return copy.textContent.trim();
}));

test('both sides send at once: each page shows the chat in seq order', async () => {
  await withShots('order', async (pages) => {
    const jo = await createAgent(hub, { username: 'joan', display_name: 'Jo', categories: ['billing'] });
    const [agent, customer] = await openPages(browser, pages, 2);
    await agentSignsIn(agent, { url: proxy.url }, jo);
    const panel = await joinedChat(customer, agent, hub, 'billing', 'Kim');

    proxy.hold();
    // The customer's message is stamped first (seq 1): its acknowledgement proves it.
    await sendMessage(customer, 'one from Kim');
    await customer.locator('[data-testid="message"]:not(.pending)').filter({ hasText: 'one from Kim' }).waitFor();
    // The agent has not seen it yet and answers (seq 2).
    await says(panel, customer, 'two from Jo');
    proxy.release();

    await panel.getByTestId('message').filter({ hasText: 'one from Kim' }).waitFor();
    await panel.locator('[data-testid="message"]:not(.pending)').filter({ hasText: 'two from Jo' }).waitFor();
    assert.deepEqual(await texts(customer), ['one from Kim', 'two from Jo'], 'customer page in seq order');
    assert.deepEqual(await texts(panel), ['one from Kim', 'two from Jo'], 'agent page in seq order');

    // Later messages keep their places, on both pages.
    await says(customer, panel, 'three from Kim');
    assert.deepEqual(await texts(panel), ['one from Kim', 'two from Jo', 'three from Kim']);
  });
});

test('a slow store: the customer gets the agent\'s reply before their own copy, leaves, and on return sees both in order', async () => {
  const mongo = await startMongo();
  // The store's write timeout well past the test: a write it gives up on goes to the local
  // spool and is acknowledged from there (15 s by default), which on a loaded machine came
  // before the check that the customer's own copy still waits.
  const slowHub = await startHub({ STORE: 'mongodb', MONGODB_URI: mongo.uri, ARCHIVE_WRITE_TIMEOUT_MS: '120000' });
  try {
    await withShots('order-slow-store', async (pages) => {
      const { agent, customer } = await agentAndCustomerPages(browser, slowHub, pages, { username: 'lee', display_name: 'Lee', categories: ['sales'] });
      const panel = await joinedChat(customer, agent, slowHub, 'sales', 'Mo');

      // The store stalls: a sender's own copy (the acknowledgement) waits for it; the peer's copy does not.
      mongo.freeze();
      await says(customer, panel, 'held by the store');
      await says(panel, customer, 'the reply that overtakes it');
      assert.equal(await customer.locator('[data-testid="message"].pending').filter({ hasText: 'held by the store' }).count(), 1,
        'the customer has the later message (seq 2) but not yet the copy of their own (seq 1)');

      // The customer leaves before their copy comes; the store comes back meanwhile.
      await customer.goto('about:blank');
      await panel.getByTestId('customer-status').filter({ hasText: 'disconnected' }).waitFor();
      mongo.thaw();
      await panel.locator('[data-testid="message"]:not(.pending)').filter({ hasText: 'the reply that overtakes it' }).waitFor({ timeout: waitMs(20000) });

      // Back within the grace period: the resume brings back what the customer did not have.
      await customer.goto(`${slowHub.url}/`);
      await customer.getByTestId('session-title').filter({ hasText: 'Chatting with Lee' }).waitFor();
      await panel.getByTestId('peer-back').waitFor();
      await customer.getByTestId('message').filter({ hasText: 'held by the store' }).waitFor();
      assert.deepEqual(await texts(customer), ['held by the store', 'the reply that overtakes it'], 'customer page in seq order, each once');
      assert.deepEqual(await texts(panel), ['held by the store', 'the reply that overtakes it'], 'agent page in seq order');
    });
  } finally {
    await slowHub.stop();
    await mongo.stop();
  }
});
