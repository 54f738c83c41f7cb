// A phone-sized window (375x700): the customer page fits without sideways
// scrolling, works with the keyboard alone, and the message box stays usable.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createAgent, agentSignsIn, shot, withShots, ADMIN_PASSWORD, hubAndBrowser, stopAll, DEFAULT_SIZE, openPages, sendMessage } from './helpers.mjs';

let hub;
let browser;
before(async () => { ({ hub, browser } = await hubAndBrowser()); });
after(() => stopAll(browser, hub));

const PHONE = { width: 375, height: 700 };

async function fitsWidth(page) {
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= PHONE.width, `no sideways scrolling (scrollWidth ${width})`);
}

async function insideViewport(locator, what) {
  const box = await locator.boundingBox();
  assert.ok(box, `${what} is visible`);
  assert.ok(box.x >= 0 && box.x + box.width <= PHONE.width, `${what} fits the width: ${JSON.stringify(box)}`);
  assert.ok(box.height >= 24, `${what} is big enough to tap: ${box.height}`);
}

test('the customer page is usable on a phone, by keyboard alone', async () => {
  await withShots('mobile', async (pages) => {
    const ivy = await createAgent(hub, { username: 'ivy', display_name: 'Ivy', categories: ['general'] });
    const [phone, agent] = await openPages(browser, pages, [PHONE, DEFAULT_SIZE]);

    await phone.goto(`${hub.url}/`);
    await phone.getByTestId('category-general').waitFor();
    await fitsWidth(phone);
    await insideViewport(phone.getByTestId('category-general'), 'a category button');

    // Keyboard only: Tab to the first topic, Enter, type a name, Enter.
    await phone.keyboard.press('Tab');
    assert.equal(await phone.evaluate(() => document.activeElement?.dataset.testid), 'category-general');
    await phone.keyboard.press('Enter');
    // Nobody is online in General: the page says so before the line, the message form
    // first (focus on its name field); the customer chooses to wait anyway.
    await phone.getByTestId('offline-title').filter({ hasText: 'Nobody is online in General right now' }).waitFor();
    assert.match(await phone.evaluate(() => document.activeElement?.id), /^offline-name-/, 'focus moves to the message form');
    await fitsWidth(phone);
    await shot(phone, 'customer-offline-phone');
    await phone.getByTestId('wait-anyway').focus();
    await phone.keyboard.press('Enter');
    assert.equal(await phone.evaluate(() => document.activeElement?.id), 'name', 'focus moves to the name field');
    await phone.keyboard.type('Jo');
    await phone.keyboard.press('Enter');
    await phone.getByTestId('place').filter({ hasText: '1' }).waitFor();
    await fitsWidth(phone);
    await shot(phone, 'customer-waiting-phone');

    await agentSignsIn(agent, hub, ivy);
    await phone.getByTestId('session-title').filter({ hasText: 'Chatting with Ivy' }).waitFor();
    assert.equal(await phone.evaluate(() => document.activeElement?.dataset.testid), 'message-input', 'the message box has focus');
    await phone.keyboard.type('Typed on a phone');
    await phone.keyboard.press('Enter');
    await agent.getByTestId('message').filter({ hasText: 'Typed on a phone' }).waitFor();
    await sendMessage(agent, 'A long answer that has to wrap on a narrow screen without pushing the layout sideways at all.');
    await phone.getByTestId('message').filter({ hasText: 'narrow screen' }).waitFor();

    await fitsWidth(phone);
    await insideViewport(phone.getByTestId('message-input'), 'the message box');
    await insideViewport(phone.getByTestId('send-button'), 'the send button');
    await insideViewport(phone.getByTestId('leave-button'), 'the leave button');
    const input = await phone.getByTestId('message-input').boundingBox();
    assert.ok(input.y + input.height <= PHONE.height, 'the message box is on screen without scrolling');
    await shot(phone, 'customer-chat-phone');
  });
});

test('the admin page fits a phone in every view', async () => {
  await withShots('admin-phone', async (pages) => {
    const width = 390;
    const [page] = await openPages(browser, pages, [{ width, height: 844 }]);
    await page.goto(`${hub.url}/admin.html`);
    await page.getByTestId('username').fill('admin');
    await page.getByTestId('password').fill(ADMIN_PASSWORD);
    await page.getByTestId('password').press('Enter');
    await page.getByTestId('dashboard').waitFor();
    for (const view of ['Dashboard', 'Agents', 'Categories', 'Archive', 'Calls', 'Appointments']) {
      await page.locator('#nav').getByRole('link', { name: view, exact: true }).click();
      await page.locator('#nav a[aria-current="page"]').filter({ hasText: view }).waitFor();
      const scrollWidth = await page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(scrollWidth <= width, `${view}: no sideways scrolling (scrollWidth ${scrollWidth})`);
      await shot(page, `admin-phone-${view.toLowerCase()}`);
    }
  });
});

test("a box outside a fieldset sits beside its text: the join form's video call on a phone", async () => {
  await withShots('checkbox-label-phone', async (pages) => {
    const [phone] = await openPages(browser, pages, [{ width: 390, height: 844 }]);
    await phone.goto(`${hub.url}/`);
    await phone.getByTestId('category-general').click();
    const wait = phone.getByTestId('wait-anyway');
    await phone.getByTestId('name-input').or(wait).first().waitFor();
    if (await wait.isVisible()) await wait.click();
    const box = await phone.getByTestId('video-request').boundingBox();
    const text = await phone.locator('label:has(> [data-testid="video-request"])').evaluate((label) => {
      const range = document.createRange();
      range.selectNodeContents(label.lastChild);
      const r = range.getBoundingClientRect();
      return { x: r.x, y: r.y, height: r.height };
    });
    const middle = (b) => b.y + b.height / 2;
    assert.ok(Math.abs(middle(text) - middle(box)) < 4, `the text beside the box, not below it: box ${JSON.stringify(box)}, text ${JSON.stringify(text)}`);
    assert.ok(text.x >= box.x + box.width, 'the text right of the box');
    // "Start chat" and "Back" share their own row.
    const start = await phone.getByTestId('join-button').boundingBox();
    const back = await phone.locator('#join-back').boundingBox();
    assert.equal(Math.round(start.y), Math.round(back.y), 'Start chat and Back side by side');
    assert.ok(start.y > box.y + box.height, 'below the box');
    await shot(phone, 'checkbox-label-phone');
  });
});
