// The widget's states around the chat itself, on the demo shop (data-category="sales"),
// at desktop (1280x860) and phone (390x844) sizes: a closed topic says when it opens
// again (before the line and while waiting in it); the greeting makes no promise while
// nobody is online; the line shows the estimated wait; and a chat ended while the window
// was minimised opens on its last lines, with the dead composer, the draft and its hint
// gone and the transcript's "on its way" clear of everything else.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { newPage, createAgent, agentSignsIn, apiCall, adminToken, shot, withShots, stopAll, openPages, sendMessage, hubBrowserAndShop } from './helpers.mjs';

const SIZES = { desktop: { width: 1280, height: 860 }, phone: { width: 390, height: 844 } };
const GREETING = 'Hi! We reply within 2 minutes.';

let hub;
let browser;
let shop;

before(async () => { ({ hub, browser, shop } = await hubBrowserAndShop({ WIDGET_TITLE: 'Trailhead help desk', WIDGET_GREETING: GREETING })); });
after(() => stopAll(browser, hub));

const widget = (page) => page.getByTestId('switchboard-widget');
const launcher = (page) => widget(page).getByTestId('widget-launcher');
const chat = (page) => page.frameLocator('[data-testid="switchboard-widget"] >> [data-testid="widget-frame"]');

/** A customer page in the shop's browser: UTC and 24-hour times, so the texts are known. */
const customerPage = (size) => newPage(browser, SIZES[size], { timezoneId: 'UTC', locale: 'en-GB' });

/** A customer page of `size` (kept in `pages`) on the shop with the widget opened: the page. */
async function widgetOpened(pages, size) {
  const page = await customerPage(size);
  pages.push(page);
  await page.goto(`${shop}/`);
  await launcher(page).click();
  return page;
}

/** Today in UTC (the hub's desk zone here), YYYY-MM-DD. */
const todayUtc = () => new Date().toISOString().slice(0, 10);

/** Sales open 09:00–17:00 every day but today (a holiday): it opens again tomorrow at 09:00. */
async function closeSalesUntilTomorrow() {
  const span = [{ open: '09:00', close: '17:00' }];
  const week = Object.fromEntries(['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'].map((d) => [d, span]));
  const res = await apiCall(hub, 'PUT', '/api/admin/chat-hours/sales', { category: 'sales', week, holidays: [todayUtc()] }, await adminToken(hub));
  assert.equal(res.status, 200, JSON.stringify(res.data));
}

/** Whether `locator` (in the widget's frame) is on the frame's screen, its middle drawn
 *  over by nothing else (not clipped away in a scrolled box either). */
const inSight = (locator) => locator.evaluate((node) => {
  const r = node.getBoundingClientRect();
  if (r.top < 0 || r.bottom > innerHeight + 1) return false;
  return node.contains(document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2));
});

for (const size of Object.keys(SIZES)) {
  test(`a closed topic says when it opens again, before the line and while waiting (${size})`, async () => {
    await withShots(`widget-closed-${size}`, async (pages) => {
      const token = await adminToken(hub);
      // Waiting in line (nobody online yet) when Sales closes for the day.
      const waiting = await widgetOpened(pages, size);
      await chat(waiting).getByTestId('wait-anyway').click();
      await chat(waiting).getByTestId('name-input').fill('Olga');
      await chat(waiting).getByTestId('join-button').click();
      await chat(waiting).getByTestId('place').filter({ hasText: '1' }).waitFor();
      await closeSalesUntilTomorrow();
      try {
        const status = chat(waiting).getByTestId('desk-status');
        await status.getByTestId('offline-title').filter({ hasText: 'Sales is closed now' }).waitFor();
        await status.getByTestId('opens-at').filter({ hasText: 'Sales opens again tomorrow at 09:00.' }).waitFor();
        await shot(waiting, `widget-closed-waiting-${size}`);

        // A new visitor: told before the line, with the message form.
        const visitor = await widgetOpened(pages, size);
        await chat(visitor).getByTestId('offline-title').filter({ hasText: 'Sales is closed now' }).waitFor();
        await chat(visitor).getByTestId('opens-at').filter({ hasText: 'Sales opens again tomorrow at 09:00.' }).waitFor();
        await shot(visitor, `widget-closed-${size}`);
        // Olga leaves the line (the tests after this one need it empty).
        await chat(waiting).getByTestId('leave-button').click();
        await chat(waiting).getByTestId('confirm-end-button').click();
        await chat(waiting).getByTestId('new-chat-button').waitFor();
      } finally {
        await apiCall(hub, 'DELETE', '/api/admin/chat-hours/sales', undefined, token);
      }
    });
  });
}

test('the greeting promises no quick reply while nobody is online (desktop and phone)', async () => {
  await withShots('widget-greeting', async (pages) => {
    for (const size of Object.keys(SIZES)) {
      const page = await widgetOpened(pages, size);
      await chat(page).getByTestId('widget-status').filter({ hasText: 'Nobody is online' }).waitFor();
      await chat(page).getByTestId('offline-title').waitFor();
      assert.equal(await chat(page).getByText(GREETING).isVisible(), false, `${size}: no "reply within 2 minutes" while nobody is online`);
      await shot(page, `widget-greeting-offline-${size}`);
    }
    // Someone is online in another topic: while the shop's topic (Sales) says nobody is
    // there, the header says so too and promises nothing; among the other topics the
    // desk's greeting is true again.
    const tess = await createAgent(hub, { username: 'tess', display_name: 'Tess', categories: ['technical'] });
    const [agent] = await openPages(browser, pages, 1);
    await agentSignsIn(agent, hub, tess);
    for (const size of Object.keys(SIZES)) {
      const page = await widgetOpened(pages, size);
      await chat(page).getByTestId('offline-title').filter({ hasText: 'Nobody is online in Sales right now' }).waitFor();
      await chat(page).getByTestId('widget-status').filter({ hasText: 'Nobody is online in Sales right now' }).waitFor();
      assert.equal(await chat(page).getByText(GREETING).isVisible(), false, `${size}: no quick reply promised beside "nobody in Sales"`);
      await shot(page, `widget-greeting-topic-away-${size}`);
      await chat(page).getByTestId('offline-back').click();
      await chat(page).getByTestId('widget-status').filter({ hasText: 'We are online' }).waitFor();
      await chat(page).getByTestId('widget-greeting').filter({ hasText: GREETING }).waitFor();
    }
  });
});

/**
 * `n` chats of `category` that start and end at once (the customer leaves), from `page`:
 * the hub estimates a wait from three ended chats of the category.
 */
async function quickChats(page, category, n) {
  await page.goto(`${hub.url}/healthz`);
  await page.evaluate(async ({ url, category, n }) => {
    for (let i = 0; i < n; i += 1) {
      await new Promise((resolve, reject) => {
        const ws = new WebSocket(url);
        ws.onopen = () => ws.send(JSON.stringify({ type: 'join', name: `Quick ${i}`, category }));
        ws.onmessage = (e) => {
          const f = JSON.parse(e.data);
          if (f.type === 'chat_started') ws.send(JSON.stringify({ type: 'leave' }));
          if (f.type === 'chat_ended') { ws.close(); resolve(); }
          if (f.type === 'error') reject(new Error(e.data));
        };
      });
    }
  }, { url: `${hub.url.replace('http', 'ws')}/ws/customer`, category, n });
}

/** A customer on `page` (a third-party client) who takes the agent's one chat slot and keeps it. */
async function blockerJoins(page, category) {
  await page.evaluate(({ url, category }) => new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    window.blocker = ws;
    ws.onopen = () => ws.send(JSON.stringify({ type: 'join', name: 'Bea', category }));
    ws.onmessage = (e) => {
      const f = JSON.parse(e.data);
      if (f.type === 'chat_started') resolve();
      if (f.type === 'error') reject(new Error(e.data));
    };
  }), { url: `${hub.url.replace('http', 'ws')}/ws/customer`, category });
}

for (const size of Object.keys(SIZES)) {
  test(`the widget's line shows the estimated wait; a chat ended while minimised opens on its last lines, composer gone (${size})`, async () => {
    await withShots(`widget-ended-${size}`, async (pages) => {
      const bo = await createAgent(hub, { username: `bo-${size}`, display_name: 'Bo', categories: ['sales'], max_chats: 1 });
      const agent = await newPage(browser);
      const helper = await newPage(browser);
      const customer = await customerPage(size);
      pages.push(customer, agent, helper);
      await agentSignsIn(agent, hub, bo);
      await quickChats(helper, 'sales', 3);
      await blockerJoins(helper, 'sales');

      // Bo is busy with Bea: Erin waits, and sees about how long.
      await customer.goto(`${shop}/`);
      await launcher(customer).click();
      await chat(customer).getByTestId('name-input').fill('Erin');
      await chat(customer).getByTestId('email-input').fill('erin@example.com');
      await chat(customer).getByTestId('join-button').click();
      await chat(customer).getByTestId('place').filter({ hasText: '1' }).waitFor();
      await chat(customer).getByTestId('estimate').filter({ hasText: 'Estimated wait: under a minute' }).waitFor();
      await shot(customer, `widget-queue-estimate-${size}`);

      // Bea leaves; Bo takes Erin, and they talk at length.
      await helper.evaluate(() => window.blocker.send(JSON.stringify({ type: 'leave' })));
      await chat(customer).getByTestId('session-title').filter({ hasText: 'Chatting with Bo' }).waitFor();
      const panel = agent.locator('[data-testid="chat-panel"][data-customer="Erin"]');
      await panel.waitFor({ state: 'attached' });
      // The console keeps Bea's ended chat open: Bo opens Erin's.
      if (!(await panel.isVisible())) await agent.locator('[data-testid="chat-list-item"][data-customer="Erin"]').click();
      for (let i = 1; i <= 8; i += 1) {
        await sendMessage(panel, `Line ${i}: the trail map, the permit and the hut booking are all in the parcel.`);
      }
      await chat(customer).getByTestId('message').filter({ hasText: 'Line 8:' }).waitFor();
      await chat(customer).getByTestId('transcript-open').click();
      await chat(customer).getByTestId('transcript-send').click();
      await chat(customer).getByTestId('transcript-status').filter({ hasText: 'when the chat ends' }).waitFor();
      // Erin starts a reply, then minimises the chat; Bo sends the code and ends the chat.
      await chat(customer).getByTestId('message-input').fill('And could you also');
      await chat(customer).getByTestId('widget-close').click();
      await sendMessage(panel, 'Your discount code: TRAIL-20');
      await panel.getByTestId('message').filter({ hasText: 'TRAIL-20' }).getByTestId('message-time').waitFor();
      await panel.getByTestId('end-chat').click();
      await chat(customer).getByTestId('chat-ended').waitFor({ state: 'attached' });
      await widget(customer).getByTestId('widget-badge').waitFor();

      // Erin opens the chat again: its end in view.
      await launcher(customer).click();
      const frame = chat(customer);
      await frame.getByTestId('transcript-status').filter({ hasText: 'on its way' }).waitFor();
      await customer.waitForTimeout(400); // the window's opening transition
      // In sight together: the last lines and what comes next, none drawn over another.
      for (const [what, locator] of [['the discount code', frame.getByTestId('message').filter({ hasText: 'TRAIL-20' })],
        ['"Bo ended the chat"', frame.getByTestId('chat-ended')], ['"on its way"', frame.getByTestId('transcript-status')],
        ['the rating', frame.getByTestId('rating-send')], ['"Start a new chat"', frame.getByTestId('new-chat-button')]]) {
        assert.equal(await inSight(locator), true, `${what} is in sight: ${JSON.stringify(await locator.boundingBox())}`);
      }
      // A chat that ended takes no message: no composer, no draft, no "the agent can see what you type".
      assert.equal(await frame.getByTestId('message-input').isVisible(), false, 'the composer is gone');
      assert.equal(await frame.getByTestId('composer-hint').isVisible(), false, 'the draft hint is gone');
      assert.equal(await frame.getByText('And could you also').count(), 0, 'the unsent draft is gone');
      await shot(customer, `widget-ended-${size}`);
    });
  });
}
