// The agent inbox: a list of the agent's chats (unread counts, waiting time, last
// message) beside one open conversation, switched by keyboard; sound, title and
// desktop notifications with the permission asked once; a status control naming
// its action; history with category names and a working filter; a phone layout of
// two views.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createAgent, agentSignsIn, customerJoins, shot, withShots, adminToken, apiCall, hubAndBrowser, launchBrowser, startForFile, openPages, sendMessage, panelOf, waitMs } from './helpers.mjs';

let hub, browser;
startForFile(() => hubAndBrowser(), (started) => ({ hub, browser } = started));

const DESKTOP = { width: 1366, height: 768 };
const PHONE = { width: 390, height: 844 };

const itemOf = (page, customer) => page.locator(`[data-testid="chat-list-item"][data-customer="${customer}"]`);
const unreadOf = (page, customer) => itemOf(page, customer).getByTestId('unread-count');
/** Which customer's conversation is on screen. */
const openCustomer = (page) => page.locator('[data-testid="chat-panel"]:visible').getAttribute('data-customer');
/** Where the keyboard focus is: the customer of the panel or list item holding it, and its testid. */
const focusIn = (page) => page.evaluate(() => {
  const a = document.activeElement;
  return `${a?.closest('[data-customer]')?.dataset.customer}:${a?.dataset.testid}`;
});

/**
 * Counts Notification.requestPermission calls across reloads (in localStorage), and
 * every notification shown. The browser context grants the permission; until the page
 * asks, the page is told it has not been asked yet ("default"), as a fresh browser would.
 */
function spyOnNotifications() {
  const Real = window.Notification;
  const realAsk = Real.requestPermission.bind(Real);
  window.__notes = [];
  class Spy extends Real {
    constructor(title, options) { super(title, options); window.__notes.push({ title, body: options?.body }); }
    static get permission() { return localStorage.getItem('test.asked') ? Real.permission : 'default'; }
    static requestPermission(...args) {
      localStorage.setItem('test.asked', String(Number(localStorage.getItem('test.asked') || 0) + 1));
      return realAsk(...args);
    }
  }
  window.Notification = Spy;
}

async function says(customer, text) {
  await sendMessage(customer, text);
  await customer.getByTestId('message').filter({ hasText: text }).locator('[data-testid="message-time"]').waitFor();
}

test('an agent with four chats switches by keyboard, with unread counts, notifications and the fourth chat in view', async (t) => {
  // The agent in the full browser: the headless shell tells the page the permission granted
  // here is "denied" (Notification.permission), whatever requestPermission answered.
  const full = await launchBrowser({ full: true });
  t.after(() => full.close());
  await withShots('inbox', async (pages) => {
    const quinn = await createAgent(hub, { username: 'quinn', display_name: 'Quinn', categories: ['sales', 'billing'], max_chats: 4 });
    const [agent] = await openPages(full, pages, [DESKTOP]);
    await agent.context().grantPermissions(['notifications'], { origin: hub.url });
    await agent.addInitScript(spyOnNotifications);
    const asked = () => agent.evaluate(() => Number(localStorage.getItem('test.asked') || 0));

    // The status control names the action; the state is shown beside it.
    await agentSignsIn(agent, hub, quinn, { available: false });
    const toggle = agent.getByTestId('availability-toggle');
    assert.equal((await toggle.textContent()).trim(), 'Go available');
    assert.equal(await agent.getByTestId('availability-state').textContent(), 'Away');
    assert.equal(await asked(), 0, 'nothing asked before a click');
    await toggle.click();
    await agent.locator('[data-testid="availability-toggle"][data-available="true"]').waitFor();
    assert.equal((await toggle.textContent()).trim(), 'Go away');
    assert.equal(await agent.getByTestId('availability-state').textContent(), 'Available');

    // Desktop notifications: asked once, from that click, and remembered.
    await agent.getByTestId('notify-state').filter({ hasText: 'Desktop notifications on' }).waitFor();
    assert.equal(await asked(), 1);
    await toggle.click();
    await agent.locator('[data-testid="availability-toggle"][data-available="false"]').waitFor();
    await toggle.click();
    await agent.locator('[data-testid="availability-toggle"][data-available="true"]').waitFor();
    await agent.reload();
    await agent.getByTestId('connection-state').filter({ hasText: 'online' }).waitFor();
    await agent.getByTestId('notify-state').filter({ hasText: 'Desktop notifications on' }).waitFor();
    assert.equal(await agent.getByTestId('notify-button').isVisible(), false, 'no second offer');
    if ((await toggle.getAttribute('data-available')) !== 'true') {
      await toggle.click();
      await agent.locator('[data-testid="availability-toggle"][data-available="true"]').waitFor();
    }
    assert.equal(await asked(), 1, 'the permission was asked once');

    // Four customers; the first chat opens by itself, the others join the list.
    const names = ['Ann', 'Ben', 'Cy', 'Dee'];
    const customers = {};
    for (const [i, name] of names.entries()) {
      const [page] = await openPages(browser, pages, 1);
      customers[name] = page;
      await customerJoins(page, hub, i % 2 ? 'billing' : 'sales', name);
      await page.getByTestId('session-title').filter({ hasText: 'Chatting with Quinn' }).waitFor();
      await itemOf(agent, name).waitFor();
    }
    await agent.getByTestId('chat-load').filter({ hasText: '4 of 4' }).waitFor();
    assert.equal(await openCustomer(agent), 'Ann', 'the first chat was opened');
    assert.equal(await itemOf(agent, 'Ann').getAttribute('aria-current'), 'true');
    const notes = await agent.evaluate(() => window.__notes.length);
    assert.equal(notes, 0, 'no desktop notification while the agent looks at the page');

    // Every chat of the list is on screen at 1366×768, without scrolling.
    for (const name of names) {
      const box = await itemOf(agent, name).boundingBox();
      assert.ok(box && box.y >= 0 && box.y + box.height <= DESKTOP.height, `${name}'s list item is in view: ${JSON.stringify(box)}`);
    }
    const composer = await panelOf(agent, 'Ann').getByTestId('message-input').boundingBox();
    assert.ok(composer.y + composer.height <= DESKTOP.height, `the open chat's message box is in view: ${JSON.stringify(composer)}`);

    // Messages to chats not open raise their counts; the open chat's do not.
    await says(customers.Ann, 'Ann here');
    await says(customers.Ben, 'Ben one');
    await says(customers.Ben, 'Ben two');
    await says(customers.Dee, 'Dee one');
    await unreadOf(agent, 'Ben').filter({ hasText: /^2$/ }).waitFor();
    await unreadOf(agent, 'Dee').filter({ hasText: /^1$/ }).waitFor();
    await panelOf(agent, 'Ann').getByTestId('message').filter({ hasText: 'Ann here' }).waitFor();
    assert.equal(await unreadOf(agent, 'Ann').isVisible(), false, 'the open chat has nothing unread');
    assert.equal(await unreadOf(agent, 'Cy').isVisible(), false);
    // Whose turn, in the work list's words: the customer "Waiting <1 min" for an answer.
    assert.match(await itemOf(agent, 'Ben').textContent(), /^Ben\s*Billing\s*2 unread, .*Waiting (<1 min|1 min)$/);
    await itemOf(agent, 'Ben').getByTestId('chat-item-preview').filter({ hasText: 'Ben two' }).waitFor();
    await agent.waitForFunction(() => /^\(3\) /.test(document.title) || document.title.startsWith('🔔'));
    // Each conversation is one row: a live chat is in "My chats", not a second time in the
    // work list (whose "Mine" counts what it lists), its status in its panel's header.
    const workRow = (name) => agent.locator(`[data-testid="conversation-item"][data-customer="${name}"]`);
    await agent.getByTestId('conversation-empty').filter({ hasText: 'Nothing here besides your chats above.' }).waitFor();
    await agent.getByRole('button', { name: 'Mine, 0', exact: true }).waitFor();
    for (const name of names) assert.equal(await workRow(name).count(), 0, `${name} is listed once`);
    await panelOf(agent, 'Ann').getByTestId('chat-conversation-status').filter({ hasText: 'Open' }).waitFor();
    await shot(agent, 'agent-inbox-desktop');

    // Keyboard: "/" goes to the message box; Alt+↓ opens the next chat, clearing its count.
    await agent.locator('body').click({ position: { x: 5, y: 300 } });
    await agent.keyboard.press('/');
    assert.equal(await focusIn(agent), 'Ann:message-input');
    await agent.keyboard.type('Hi Ann / welcome');
    assert.equal(await panelOf(agent, 'Ann').getByTestId('message-input').inputValue(), 'Hi Ann / welcome', '"/" is typed while typing');
    await agent.keyboard.press('Alt+ArrowDown');
    assert.equal(await openCustomer(agent), 'Ben');
    assert.equal(await focusIn(agent), 'Ben:message-input', 'still in a message box, now Ben\'s');
    await unreadOf(agent, 'Ben').waitFor({ state: 'hidden' });
    assert.equal(await unreadOf(agent, 'Dee').textContent(), '1', 'other counts stay');
    await agent.keyboard.type('Hello Ben');
    await agent.keyboard.press('Enter');
    await customers.Ben.getByTestId('message').filter({ hasText: 'Hello Ben' }).waitFor();
    await itemOf(agent, 'Ben').getByTestId('chat-item-waiting').filter({ hasText: 'answered' }).waitFor();

    await agent.keyboard.press('Alt+4');
    assert.equal(await openCustomer(agent), 'Dee');
    await unreadOf(agent, 'Dee').waitFor({ state: 'hidden' });
    await agent.keyboard.press('Alt+ArrowUp');
    assert.equal(await openCustomer(agent), 'Cy');
    await agent.keyboard.press('Alt+ArrowDown');
    await agent.keyboard.press('Alt+ArrowDown');
    assert.equal(await openCustomer(agent), 'Ann', 'the list wraps around');
    assert.equal(await panelOf(agent, 'Ann').getByTestId('message-input').inputValue(), 'Hi Ann / welcome', 'the draft is kept');
    await agent.waitForFunction(() => !/^\(\d+\) /.test(document.title));

    // Esc leaves the message box for the list; "?" shows the shortcuts.
    await agent.keyboard.press('Escape');
    assert.equal(await focusIn(agent), 'Ann:chat-list-item');
    await agent.keyboard.press('?');
    await agent.getByTestId('shortcuts-help').filter({ hasText: 'Next chat' }).waitFor();
    await shot(agent, 'agent-inbox-shortcuts');
    await agent.keyboard.press('Escape');
    await agent.getByTestId('shortcuts-help').waitFor({ state: 'hidden' });

    // A list item is a button: a click opens its chat.
    await itemOf(agent, 'Cy').click();
    assert.equal(await openCustomer(agent), 'Cy');

    // The tab in the background: a message to the open chat counts as unread, with a
    // desktop notification; looking again clears it.
    await agent.evaluate(() => {
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
      Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
    });
    await says(customers.Cy, 'Anyone there?');
    await unreadOf(agent, 'Cy').filter({ hasText: /^1$/ }).waitFor();
    const shown = await agent.evaluate(() => window.__notes.map((n) => `${n.title}: ${n.body}`));
    assert.deepEqual(shown, ['Cy: new message: Anyone there?']);
    // Announced once to screen readers, by the page (the transcript is not a second live region).
    await agent.locator('#sr-announcer').filter({ hasText: 'Cy, 1 unread: Anyone there?' }).waitFor({ state: 'attached' });
    assert.equal(await panelOf(agent, 'Cy').getByTestId('transcript').getAttribute('aria-live'), null, 'the transcript is not live');
    await agent.evaluate(() => {
      delete document.visibilityState;
      delete document.hidden;
      document.dispatchEvent(new Event('visibilitychange'));
    });
    await unreadOf(agent, 'Cy').waitFor({ state: 'hidden' });

    // Ended chats say so in the list; "Close" removes them and opens the next.
    await customers.Cy.getByTestId('leave-button').click();
    await customers.Cy.getByTestId('confirm-end-button').click();
    await itemOf(agent, 'Cy').getByTestId('chat-item-waiting').filter({ hasText: 'ended' }).waitFor();
    await panelOf(agent, 'Cy').getByTestId('close-panel').click();
    await itemOf(agent, 'Cy').waitFor({ state: 'detached' });
    assert.equal(await openCustomer(agent), 'Dee');
    await agent.getByTestId('chat-load').filter({ hasText: '3 of 4' }).waitFor();

    // History: category names, and the filter narrows the list.
    await panelOf(agent, 'Dee').getByTestId('end-chat').click();
    await agent.getByTestId('archive-row').filter({ hasText: 'Cy' }).filter({ hasText: 'Sales' }).waitFor({ timeout: waitMs(10000) });
    await agent.getByTestId('archive-row').filter({ hasText: 'Dee' }).filter({ hasText: 'Billing' }).waitFor({ timeout: waitMs(10000) });
    await agent.getByTestId('archive-category').selectOption({ label: 'Billing' });
    await agent.getByTestId('archive-row').filter({ hasText: 'Cy' }).waitFor({ state: 'detached' });
    const rows = await agent.getByTestId('archive-row').allTextContents();
    assert.ok(rows.some((t) => /Dee/.test(t)) && rows.every((t) => /Billing/.test(t)), `only Billing chats: ${rows.join(' | ')}`);
  });
});

test('on a phone the inbox is two views: the list, and one conversation with a way back', async () => {
  await withShots('inbox-phone', async (pages) => {
    const rae = await createAgent(hub, { username: 'rae', display_name: 'Rae', categories: ['general'], max_chats: 4 });
    const [agent] = await openPages(browser, pages, [PHONE]);
    await agentSignsIn(agent, hub, rae);
    for (const name of ['Sam', 'Tia', 'Uma', 'Vic']) {
      const [page] = await openPages(browser, pages, 1);
      await customerJoins(page, hub, 'general', name);
      await itemOf(agent, name).waitFor({ state: 'attached' });
      if (name === 'Tia') await says(page, 'Hello from Tia');
    }
    // The first chat opened by itself; back to the list shows all four with Tia's count.
    assert.equal(await openCustomer(agent), 'Sam');
    await agent.getByTestId('back-to-list').click();
    await unreadOf(agent, 'Tia').filter({ hasText: /^1$/ }).waitFor();
    const width = await agent.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= PHONE.width, `no sideways scrolling (scrollWidth ${width})`);
    await shot(agent, 'agent-inbox-phone-list');
    await itemOf(agent, 'Tia').click();
    await panelOf(agent, 'Tia').getByTestId('message').filter({ hasText: 'Hello from Tia' }).waitFor();
    assert.equal(await agent.getByTestId('chat-list').isVisible(), false, 'the conversation has the screen');
    assert.equal(await unreadOf(agent, 'Tia').evaluate((n) => n.hidden), true, 'read once opened');
    const input = await panelOf(agent, 'Tia').getByTestId('message-input').boundingBox();
    assert.ok(input.x >= 0 && input.x + input.width <= PHONE.width, 'the message box fits');
    await shot(agent, 'agent-inbox-phone-chat');
    await agent.getByTestId('back-to-list').click();
    await itemOf(agent, 'Vic').waitFor();
  });
});

test('on a phone the console header is one bar and the open chat keeps its message box in view', async () => {
  await withShots('console-phone-fit', async (pages) => {
    const wes = await createAgent(hub, { username: 'wes', display_name: 'Wes Moreno', categories: ['sales'], max_chats: 2 });
    const [agent] = await openPages(browser, pages, [PHONE]);
    await agentSignsIn(agent, hub, wes);
    const [customer] = await openPages(browser, pages, 1);
    await customerJoins(customer, hub, 'sales', 'Yara');
    const panel = panelOf(agent, 'Yara');
    await panel.getByTestId('message-input').waitFor();
    await says(customer, 'Do you ship to Norway?');
    await panel.getByTestId('message').filter({ hasText: 'Norway' }).waitFor();
    const at = await agent.evaluate(() => {
      const box = (el) => el.getBoundingClientRect();
      const panelEl = document.querySelector('[data-testid="chat-panel"]:not([hidden])');
      return {
        header: box(document.querySelector('header.app')).height,
        input: box(panelEl.querySelector('[data-testid="message-input"]')),
        send: box(panelEl.querySelector('[data-testid="send-button"]')),
        transcript: box(panelEl.querySelector('[data-testid="transcript"]')).height,
        scrollY: window.scrollY,
      };
    });
    assert.ok(at.header <= 64, `the header is one bar: ${at.header}px`);
    assert.ok(at.input.bottom <= 844 && at.send.bottom <= 844, `the message box and Send are on screen: ${JSON.stringify(at)}`);
    assert.ok(at.input.top <= 700, `the message box starts well above the bottom: ${at.input.top}px`);
    assert.ok(at.transcript >= 300, `the transcript keeps room: ${at.transcript}px`);
    // Availability stays one tap away; the rest is behind the menu button.
    assert.equal(await agent.getByTestId('availability-toggle').isVisible(), true);
    assert.equal(await agent.getByTestId('sign-out').isVisible(), false);
    const menu = agent.getByTestId('header-menu');
    assert.equal(await menu.getAttribute('aria-expanded'), 'false');
    await shot(agent, 'agent-console-phone-chat');
    await menu.click();
    assert.equal(await menu.getAttribute('aria-expanded'), 'true');
    await agent.getByTestId('sign-out').waitFor();
    assert.equal(await agent.getByTestId('appointments-link').isVisible(), true);
    assert.equal(await agent.getByTestId('agent-name').textContent(), 'Wes Moreno');
    assert.ok(await agent.evaluate(() => document.documentElement.scrollWidth) <= PHONE.width, 'no sideways scrolling with the menu open');
    await shot(agent, 'agent-console-phone-menu');
    await menu.press('Escape');
    assert.equal(await menu.getAttribute('aria-expanded'), 'false');
    assert.equal(await agent.getByTestId('sign-out').isVisible(), false);
  });
});

test('at 1366×768 the console header is one row', async () => {
  await withShots('console-desktop-header', async (pages) => {
    const xia = await createAgent(hub, { username: 'xia', display_name: 'Xia', categories: ['sales'] });
    const [agent] = await openPages(browser, pages, [DESKTOP]);
    await agentSignsIn(agent, hub, xia);
    // With a chat open every control is there (going away with a reason, finishing first).
    const [customer] = await openPages(browser, pages, 1);
    await customerJoins(customer, hub, 'sales', 'Zed');
    await panelOf(agent, 'Zed').waitFor();
    await agent.getByTestId('busy-button').waitFor();
    const tops = await agent.evaluate(() => [...document.querySelectorAll('header.app > *, header.app .header-more > *')]
      .filter((e) => e.offsetParent !== null && e.getBoundingClientRect().height > 0 && !e.classList.contains('header-more'))
      .map((e) => Math.round(e.getBoundingClientRect().top + e.getBoundingClientRect().height / 2)));
    assert.ok(Math.max(...tops) - Math.min(...tops) <= 4, `one row: ${tops}`);
    assert.equal(await agent.getByTestId('header-menu').isVisible(), false, 'no menu button on a wide screen');
    assert.equal(await agent.getByTestId('sign-out').isVisible(), true);
  });
});

test('an agent finishes their chats before taking new ones, and goes away with a reason the admin sees', async () => {
  await withShots('agent-status', async (pages) => {
    const made = await apiCall(hub, 'POST', '/api/admin/categories', { id: 'support', name: 'Support' }, await adminToken(hub));
    assert.equal(made.status, 201, JSON.stringify(made.data));
    const rosa = await createAgent(hub, { username: 'rosa', display_name: 'Rosa', categories: ['support'], max_chats: 2 });
    const [agent, first, second] = await openPages(browser, pages, [DESKTOP, PHONE, PHONE]);
    await agentSignsIn(agent, hub, rosa);
    const busy = agent.getByTestId('busy-button');
    assert.equal(await busy.isVisible(), false, 'nothing to finish without a chat');
    await customerJoins(first, hub, 'support', 'Fay');
    await panelOf(agent, 'Fay').waitFor();
    await busy.click();
    await agent.getByTestId('availability-state').filter({ hasText: 'Busy · finishing chats' }).waitFor();
    assert.equal(await busy.isVisible(), false);

    // A busy agent takes no new customer: the second waits in line.
    await customerJoins(second, hub, 'support', 'Gus');
    await second.getByTestId('place').filter({ hasText: '1' }).waitFor();
    await shot(agent, 'agent-status-busy');

    // The last chat ends: available again by itself, and the waiting customer comes in.
    await panelOf(agent, 'Fay').getByTestId('end-chat').click();
    const confirm = agent.getByTestId('confirm-end');
    if (await confirm.isVisible().catch(() => false)) await confirm.click();
    await agent.getByTestId('availability-state').filter({ hasText: 'Available' }).waitFor();
    await itemOf(agent, 'Gus').waitFor();

    // Away with a reason: shown beside the button and in the admin's live figures.
    await agent.getByTestId('away-reason').selectOption('Lunch');
    await agent.getByTestId('availability-toggle').click();
    await agent.getByTestId('availability-state').filter({ hasText: 'Away · Lunch' }).waitFor();
    const token = await adminToken(hub);
    const stats = await apiCall(hub, 'GET', '/api/admin/stats', undefined, token);
    const mine = stats.data.agents.find((a) => a.id === rosa.id);
    assert.deepEqual([mine.state, mine.away_reason], ['away', 'Lunch']);
  });
});
