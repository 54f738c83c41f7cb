// Chat offers (a category in offer mode): the agent console shows an offer card with the
// customer's name, topic, first message and a countdown; Accept starts the chat (and the
// customer's "what can we help you with" becomes their first message, sent once);
// declined or lapsed offers leave, and two lapses in a row set the agent away. The admin
// page switches a category between Assign and Offer.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHub, startProxy, createAgent, agentSignsIn, shot, withShots, apiCall, adminToken, hubAndBrowser, startForFile, openPages, adminSignsIn, sendMessage, panelOf, customerJoins, waitMs } from './helpers.mjs';

let hub, browser, quickHub;
// quickHub: offers that lapse after 2 s, for the "let it lapse" case.
startForFile(async () => ({ ...(await hubAndBrowser()), quickHub: await startHub({ OFFER_TIMEOUT_SECS: '2' }) }),
  (started) => ({ hub, browser, quickHub } = started));

const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

async function offerMode(target, category) {
  const res = await apiCall(target, 'PUT', `/api/admin/routing/${category}`, { mode: 'offer' }, await adminToken(target));
  assert.equal(res.status, 200, JSON.stringify(res.data));
  assert.equal(res.data.categories.find((c) => c.category === category)?.mode, 'offer');
  return res.data;
}

/** The customer page: a topic, a name, and what they came about. */
const customerJoinsWith = (page, target, category, name, message, { video = false } = {}) =>
  customerJoins(page, target, category, name, { message, video });

const cardOf = (page, customer) => page.locator(`[data-testid="offer-card"][data-customer="${customer}"]`);

test('an offer accepted from the agent console', async () => {
  await withShots('offer-accept', async (pages) => {
    const view = await offerMode(hub, 'general');
    assert.equal(view.offer_timeout_secs, 20);
    const olga = await createAgent(hub, { username: 'olga', display_name: 'Olga', categories: ['general'], max_chats: 2 });
    const [agent, customer] = await openPages(browser, pages, [DESKTOP, DESKTOP]);
    await agentSignsIn(agent, hub, olga);

    await customerJoinsWith(customer, hub, 'general', 'Carla', 'Where is my parcel?\nOrder 1234', { video: true });
    // The customer just waits in line meanwhile.
    await customer.getByTestId('place').filter({ hasText: '1' }).waitFor();

    const card = cardOf(agent, 'Carla');
    await card.waitFor();
    assert.equal(await card.getByTestId('offer-customer').textContent(), 'Carla');
    assert.equal(await card.getByTestId('offer-category').textContent(), 'General');
    assert.equal(await card.getByTestId('offer-message').textContent(), 'Where is my parcel?\nOrder 1234');
    await card.getByTestId('offer-video').waitFor();
    const countdown = card.getByTestId('offer-countdown');
    const first = Number(/(\d+) s to answer/.exec(await countdown.textContent())?.[1]);
    assert.ok(first > 10 && first <= 20, `countdown starts near 20 s, was ${first}`);
    // It counts down, and the customer's wait counts up.
    // Polled, not an exact text: on a loaded machine a repaint can skip a second.
    await agent.waitForFunction(({ name, first }) => {
      const shown = document.querySelector(`[data-testid="offer-card"][data-customer="${name}"] [data-testid="offer-countdown"]`);
      const left = Number(/(\d+) s to answer/.exec(shown?.textContent ?? '')?.[1]);
      return left <= first - 2;
    }, { name: 'Carla', first }, { timeout: waitMs(8000), polling: 100 }).catch(async (error) => {
      throw new Error(`countdown did not move from ${first}: ${await countdown.textContent()}`, { cause: error });
    });
    assert.match(await card.getByTestId('offer-waited').textContent(), /^Waiting 0:(0[2-9]|1\d)$/);
    // Named buttons, and the tab says an offer waits.
    await agent.getByRole('button', { name: 'Accept chat with Carla' }).waitFor();
    await agent.getByRole('button', { name: 'Decline chat with Carla' }).waitFor();
    assert.match(await agent.evaluate(() => document.title), /offer|Chat offer: Carla/);
    await shot(agent, 'offer-card-desktop');

    // Accept, from the keyboard.
    await card.getByTestId('offer-accept').focus();
    await agent.keyboard.press('Enter');
    await card.waitFor({ state: 'detached' });
    const panel = panelOf(agent, 'Carla');
    await panel.waitFor();
    await customer.getByTestId('session-title').filter({ hasText: 'Chatting with Olga' }).waitFor();
    // The customer's first message is in the chat, on both sides, sent by the customer.
    await panel.getByTestId('message').filter({ hasText: 'Where is my parcel?' }).waitFor();
    const mine = customer.getByTestId('message').filter({ hasText: 'Where is my parcel?' });
    await mine.locator('[data-testid="message-time"]').waitFor();
    assert.equal(await mine.getAttribute('data-mine'), 'true');
    // The accepted chat is open with the composer ready.
    assert.equal(await agent.evaluate(() => document.activeElement?.dataset.testid), 'message-input');
    assert.doesNotMatch(await agent.evaluate(() => document.title), /offer/);
    await shot(agent, 'offer-accepted-agent');
    await shot(customer, 'offer-accepted-customer');

    // A reload resumes the chat without sending the first message again.
    await customer.reload();
    await customer.getByTestId('session-title').filter({ hasText: 'Chatting with Olga' }).waitFor();
    await customer.getByTestId('message').filter({ hasText: 'Where is my parcel?' }).waitFor();
    await sendMessage(panel, 'Let me check.');
    await customer.getByTestId('message').filter({ hasText: 'Let me check.' }).waitFor();
    assert.equal(await customer.getByTestId('message').filter({ hasText: 'Where is my parcel?' }).count(), 1);
    assert.equal(await panel.getByTestId('message').filter({ hasText: 'Where is my parcel?' }).count(), 1);

    // A second customer while the agent chats: the card sits above the chat on a phone too.
    await agent.setViewportSize(PHONE);
    const [second] = await openPages(browser, pages, [PHONE]);
    await customerJoinsWith(second, hub, 'general', 'Bartholomew Featherstonehaugh-Smythe', 'I would like to change the delivery address of my order, which is going to the old flat.');
    const card2 = cardOf(agent, 'Bartholomew Featherstonehaugh-Smythe');
    await card2.waitFor();
    // Both buttons are on screen and not cut off.
    for (const id of ['offer-accept', 'offer-decline']) {
      const box = await card2.getByTestId(id).boundingBox();
      assert.ok(box && box.x >= 0 && box.x + box.width <= PHONE.width && box.height >= 36, `${id} fits: ${JSON.stringify(box)}`);
    }
    await shot(agent, 'offer-card-phone');
    // Declined: that card goes (with nobody else to ask, a new offer of them may follow).
    const declined = await card2.getAttribute('data-offer-id');
    await card2.getByTestId('offer-decline').click();
    await agent.locator(`[data-testid="offer-card"][data-offer-id="${declined}"]`).waitFor({ state: 'detached' });
  });
});

test('a declined offer and a lapsed one leave the console; two lapses in a row set the agent away', async () => {
  await withShots('offer-lapse', async (pages) => {
    await offerMode(quickHub, 'sales');
    const lena = await createAgent(quickHub, { username: 'lena', display_name: 'Lena', categories: ['sales'] });
    const [agent, customer] = await openPages(browser, pages, [DESKTOP, DESKTOP]);
    // The agent's connection goes through a proxy, to be cut at the end.
    const proxy = await startProxy(quickHub);
    await agentSignsIn(agent, { url: proxy.url }, lena);
    await customerJoinsWith(customer, quickHub, 'sales', 'Dana', '');

    const card = cardOf(agent, 'Dana');
    await card.waitFor();
    assert.equal(await card.getByTestId('offer-message').textContent(), 'No message given.');
    const firstId = await card.getAttribute('data-offer-id');
    await card.getByTestId('offer-decline').click();
    // The declined card goes (with nobody else in Sales, Dana is offered to Lena again).
    await agent.locator(`[data-testid="offer-card"][data-offer-id="${firstId}"]`).waitFor({ state: 'detached' });
    assert.equal(await agent.getByTestId('offer-notice').textContent(), '', 'declining needs no notice');

    // Offered again; let it lapse: the card goes with a notice.
    await agent.locator(`[data-testid="offer-card"]:not([data-offer-id="${firstId}"])`).waitFor();
    await agent.getByTestId('offer-notice').filter({ hasText: 'You missed an offer from Dana' }).waitFor({ timeout: waitMs(5000) });
    await shot(agent, 'offer-lapsed');
    // A second lapse in a row: the hub sets Lena away, and the status says why.
    await agent.getByTestId('availability-state').filter({ hasText: 'Away · Missed two chat offers' }).waitFor({ timeout: waitMs(8000) });
    assert.equal(await agent.getByTestId('offer-card').count(), 0);
    assert.equal((await agent.getByTestId('availability-toggle').textContent()).trim(), 'Go available');
    await shot(agent, 'offer-away-after-lapses');
    // The customer never left the line.
    await customer.getByTestId('place').filter({ hasText: '1' }).waitFor();
    assert.equal(await customer.getByTestId('session-title').textContent(), 'Waiting for an agent');

    // Offers do not survive a dropped connection: the card goes at once, with a word why
    // (the hub may offer Dana again on the new connection, under a new id).
    await agent.getByTestId('availability-toggle').click();
    await cardOf(agent, 'Dana').waitFor();
    const before = await cardOf(agent, 'Dana').getAttribute('data-offer-id');
    proxy.cut();
    await agent.getByTestId('connection-state').filter({ hasText: 'reconnecting' }).waitFor();
    assert.equal(await agent.getByTestId('offer-card').count(), 0);
    await agent.getByTestId('offer-notice').filter({ hasText: 'The connection dropped' }).waitFor();
    proxy.restore();
    await agent.getByTestId('connection-state').filter({ hasText: 'online' }).waitFor({ timeout: waitMs(15000) });
    assert.equal(await agent.locator(`[data-testid="offer-card"][data-offer-id="${before}"]`).count(), 0);
    await proxy.close();
  });
});

test('the admin switches a category between assign and offer, with the offer timeout shown', async () => {
  await withShots('offer-admin', async (pages) => {
    const [admin] = await openPages(browser, pages, [DESKTOP]);
    await adminSignsIn(admin, hub, 'categories');
    await admin.getByTestId('offer-timeout').filter({ hasText: '20 seconds' }).waitFor();
    const select = admin.locator('[data-testid="routing-row"][data-id="billing"] [data-testid="routing-mode"]');
    assert.equal(await select.inputValue(), 'assign');
    await admin.getByTestId('routing-rows').getByLabel('Billing', { exact: true }).selectOption('offer');
    await admin.locator('[data-testid="routing-row"][data-id="billing"] [data-testid="routing-status"]').filter({ hasText: 'Saved' }).waitFor();
    const res = await apiCall(hub, 'GET', '/api/admin/routing', undefined, await adminToken(hub));
    assert.equal(res.data.categories.find((c) => c.category === 'billing').mode, 'offer');
    await admin.reload();
    await admin.getByTestId('offer-timeout').filter({ hasText: '20 seconds' }).waitFor();
    assert.equal(await select.inputValue(), 'offer');
    await shot(admin, 'offer-admin-routing');

    // A refusal is shown by the control, which goes back to what is saved.
    await admin.route('**/api/admin/routing/billing', (route) => route.fulfill({
      status: 400, contentType: 'application/json',
      body: JSON.stringify({ error: { code: 'unknown_category', message: 'no category "billing"' } }),
    }));
    await select.selectOption('assign');
    await admin.locator('[data-testid="routing-row"][data-id="billing"] [data-testid="routing-error"]').filter({ hasText: 'no category "billing"' }).waitFor();
    assert.equal(await select.inputValue(), 'offer');
    await admin.unroute('**/api/admin/routing/billing');
    await select.selectOption('assign');
    await admin.locator('[data-testid="routing-row"][data-id="billing"] [data-testid="routing-status"]').filter({ hasText: 'Saved: assigned' }).waitFor();
    assert.equal(await admin.locator('[data-testid="routing-row"][data-id="billing"] [data-testid="routing-error"]').textContent(), '');
  });
});
