// Messages are shown in `seq` order, not arrival order (issue 13, item 16).
// Both sides send at once: the agent's page gets the customer's earlier
// message only after it showed its own later one (the hub's frames to the
// agent are held in a proxy meanwhile, like a slow network), and must still
// show the customer's first.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHub, startProxy, launchBrowser, newPage, createAgent, agentSignsIn, customerJoins, withShots } from './helpers.mjs';

let hub;
let proxy;
let browser;
before(async () => {
  hub = await startHub();
  proxy = await startProxy(hub);
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await proxy?.close();
  await hub?.stop();
});

const panelOf = (page, customer) => page.locator(`[data-testid="chat-panel"][data-customer="${customer}"]`);
const texts = async (loc) => (await loc.getByTestId('message').allTextContents()).map((t) => t.replace(/^(You|Them): /, '').replace(/\d{1,2}[:.]\d{2}.*$/, '').trim());

test('both sides send at once: each page shows the chat in seq order', async () => {
  await withShots('order', async (pages) => {
    const jo = await createAgent(hub, { username: 'joan', display_name: 'Jo', categories: ['billing'] });
    const agent = await newPage(browser);
    const customer = await newPage(browser);
    pages.push(agent, customer);
    await agentSignsIn(agent, { url: proxy.url }, jo);
    await customerJoins(customer, hub, 'billing', 'Kim');
    const panel = panelOf(agent, 'Kim');
    await panel.waitFor();

    proxy.hold();
    // The customer's message is stamped first (seq 1): its acknowledgement proves it.
    await customer.getByTestId('message-input').fill('one from Kim');
    await customer.getByTestId('message-input').press('Enter');
    await customer.locator('[data-testid="message"]:not(.pending)').filter({ hasText: 'one from Kim' }).waitFor();
    // The agent has not seen it yet and answers (seq 2).
    await panel.getByTestId('message-input').fill('two from Jo');
    await panel.getByTestId('message-input').press('Enter');
    await customer.getByTestId('message').filter({ hasText: 'two from Jo' }).waitFor();
    proxy.release();

    await panel.getByTestId('message').filter({ hasText: 'one from Kim' }).waitFor();
    await panel.locator('[data-testid="message"]:not(.pending)').filter({ hasText: 'two from Jo' }).waitFor();
    assert.deepEqual(await texts(customer), ['one from Kim', 'two from Jo'], 'customer page in seq order');
    assert.deepEqual(await texts(panel), ['one from Kim', 'two from Jo'], 'agent page in seq order');

    // Later messages keep their places, on both pages.
    await customer.getByTestId('message-input').fill('three from Kim');
    await customer.getByTestId('message-input').press('Enter');
    await panel.getByTestId('message').filter({ hasText: 'three from Kim' }).waitFor();
    assert.deepEqual(await texts(panel), ['one from Kim', 'two from Jo', 'three from Kim']);
  });
});
