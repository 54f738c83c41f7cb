// The admin page: form errors by the field, creating an agent who then signs in
// on agent.html and takes a chat, the live dashboard, and the archive.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHub, ADMIN_PASSWORD, shot, withShots, apiCall, adminToken, hubAndBrowser, stopAll, openPages, adminSignsIn, sendMessage, joinedChat, fillIn, waitMs } from './helpers.mjs';

let hub;
let browser;
before(async () => { ({ hub, browser } = await hubAndBrowser()); });
after(() => stopAll(browser, hub));

/** Opens an admin view from the header's links. */
async function view(page, name) {
  await page.locator('#nav').getByRole('link', { name, exact: true }).click();
  await page.locator(`#nav a[aria-current="page"]`).filter({ hasText: name }).waitFor();
}

test('an admin creates an agent who then signs in and takes a chat', async () => {
  await withShots('admin', async (pages) => {
    const [admin] = await openPages(browser, pages, 1);
    await admin.goto(`${hub.url}/admin.html`);

    // A wrong password is refused with the server's message by the field.
    await fillIn(admin, { 'username': 'admin', 'password': 'not-the-password' });
    await admin.getByTestId('login-button').click();
    await admin.getByTestId('password-error').filter({ hasText: 'wrong username or password' }).waitFor();
    await admin.getByTestId('password').fill(ADMIN_PASSWORD);
    await admin.getByTestId('password').press('Enter');
    await admin.getByTestId('dashboard').waitFor();
    await admin.getByTestId('stat-agents-online').filter({ hasText: '0' }).waitFor();
    // One section at a time: the header's links switch views, and the address names the view.
    assert.equal(await admin.getByTestId('agent-username').isVisible(), false, 'the agents view is not shown with the dashboard');
    await view(admin, 'Agents');
    assert.equal(await admin.getByTestId('dashboard').isVisible(), false);
    assert.match(admin.url(), /#agents$/);

    // Server-side validation shows next to the field it concerns.
    await fillIn(admin, { 'agent-username': 'dave', 'agent-display-name': 'Dave Daniels', 'agent-password': 'short' });
    await admin.getByTestId('agent-submit').click();
    await admin.getByTestId('agent-password-error').filter({ hasText: 'at least 8 characters' }).waitFor();

    await admin.getByTestId('agent-password').fill('dave-password');
    await admin.getByTestId('agent-category-billing').check();
    await admin.getByTestId('agent-limit').selectOption('2');
    await admin.getByTestId('agent-submit').click();
    const row = admin.locator('[data-testid="agent-row"][data-username="dave"]');
    await row.filter({ hasText: 'Billing' }).waitFor();
    assert.match(await row.textContent(), /Dave Daniels/);

    // Edit: add a category and raise the limit.
    await row.getByTestId('agent-edit').click();
    await admin.getByTestId('agent-category-sales').check();
    await admin.getByTestId('agent-limit').selectOption('3');
    await admin.getByTestId('agent-submit').click();
    await admin.getByTestId('agent-status').filter({ hasText: 'Saved dave' }).waitFor();
    await row.filter({ hasText: 'Sales' }).waitFor();
    await row.locator('td').nth(2).filter({ hasText: /^3$/ }).waitFor();

    // Categories: add and rename one.
    await view(admin, 'Categories');
    await admin.getByTestId('category-name').fill('Returns');
    await admin.getByTestId('category-add').click();
    const returns = admin.locator('[data-testid="category-row"][data-id="returns"]');
    await returns.waitFor();
    await returns.getByTestId('category-rename-input').fill('Returns & refunds');
    await returns.getByTestId('category-rename').click();
    await view(admin, 'Agents');
    await admin.getByTestId('agent-category-returns').waitFor({ state: 'attached' });
    await view(admin, 'Categories');
    const cats = await apiCall(hub, 'GET', '/api/categories');
    assert.ok(cats.data.some((c) => c.id === 'returns' && c.name === 'Returns & refunds'));
    await returns.getByTestId('category-remove').click();
    await returns.getByTestId('category-remove').click();
    await returns.waitFor({ state: 'detached' });

    // The new agent signs in on agent.html and takes a chat.
    const [agent, customer] = await openPages(browser, pages, 2);
    await agent.goto(`${hub.url}/agent.html`);
    await fillIn(agent, { 'username': 'dave', 'password': 'dave-password' });
    await agent.getByTestId('login-button').click();
    await agent.getByTestId('profile-text').filter({ hasText: 'Billing' }).waitFor();
    await agent.getByTestId('availability-toggle').click();
    await agent.locator('[data-testid="availability-toggle"][data-available="true"]').waitFor();
    await view(admin, 'Dashboard');
    await admin.getByTestId('stat-agents-available').filter({ hasText: '1' }).waitFor();
    const daveRow = admin.getByTestId('agent-state').filter({ hasText: 'Dave Daniels' });
    await daveRow.getByTestId('agent-state-pill').filter({ hasText: 'available' }).waitFor({ timeout: waitMs(6000) });

    const panel = await joinedChat(customer, agent, hub, 'billing', 'Gus');
    await customer.getByTestId('session-title').filter({ hasText: 'Dave Daniels' }).waitFor();
    await sendMessage(customer, 'Invoice question');
    await panel.getByTestId('message').filter({ hasText: 'Invoice question' }).waitFor();
    await sendMessage(panel, 'Happy to help');
    await customer.getByTestId('message').filter({ hasText: 'Happy to help' }).waitFor();

    // The dashboard follows within its 2 s poll.
    await admin.getByTestId('stat-chats-active').filter({ hasText: '1' }).waitFor({ timeout: waitMs(6000) });
    // Per agent, live: Dave has one chat of his limit of three.
    await daveRow.filter({ hasText: '1 of 3' }).waitFor({ timeout: waitMs(6000) });
    // Set away, he is shown away and no longer counted as able to take a chat.
    await agent.getByTestId('availability-toggle').click();
    await daveRow.getByTestId('agent-state-pill').filter({ hasText: 'away' }).waitFor({ timeout: waitMs(6000) });
    await admin.getByTestId('stat-agents-available').filter({ hasText: '0' }).waitFor({ timeout: waitMs(6000) });
    await admin.getByTestId('dashboard').scrollIntoViewIfNeeded();
    await shot(admin, 'admin-dashboard');

    // Disabling the agent ends their session.
    await panel.getByTestId('end-chat').click();
    await customer.getByTestId('chat-ended').waitFor();

    // The archive lists the chat, when the history API is there.
    const token = await adminToken(hub);
    const history = await apiCall(hub, 'GET', '/api/conversations?limit=5', undefined, token);
    await view(admin, 'Archive');
    if (history.status === 404) {
      await admin.getByTestId('archive-search').click();
      await admin.getByTestId('archive-status').filter({ hasText: 'not available' }).waitFor();
    } else {
      await admin.waitForTimeout(500);
      await admin.getByTestId('archive-category').selectOption('billing');
      await admin.getByTestId('archive-search').click();
      const item = admin.getByTestId('archive-row').filter({ hasText: 'Gus' });
      await item.waitFor();
      await item.getByTestId('archive-open').click();
      await admin.getByTestId('archive-message').filter({ hasText: 'Invoice question' }).waitFor();
    }

    await view(admin, 'Agents');
    await row.getByTestId('agent-toggle').click();
    await row.filter({ hasText: 'disabled' }).waitFor();
    await agent.getByTestId('login').waitFor();
    await agent.getByTestId('page-notice').filter({ hasText: 'disabled' }).waitFor();
  });
});

test('an admin gives a category chat hours; outside them it is closed, and always open again at one click', async () => {
  await withShots('admin-hours', async (pages) => {
    const [admin] = await openPages(browser, pages, 1);
    await adminSignsIn(admin, hub, 'categories', { enter: true });
    const row = admin.locator('[data-testid="hours-row"][data-id="sales"]');
    await row.getByTestId('hours-state').filter({ hasText: 'open now' }).waitFor();
    assert.equal(await row.getByTestId('hours-summary').textContent(), 'Always open');
    assert.equal(await admin.getByTestId('hours-zone').textContent(), 'UTC');

    // Open no day of the week: closed now, whatever today is.
    await row.getByTestId('hours-edit').click();
    for (const day of ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun']) await row.getByTestId(`hours-${day}-open`).uncheck();
    await row.getByTestId('hours-holidays').fill('Christmas');
    await row.getByTestId('hours-save').click();
    await row.getByTestId('hours-error').filter({ hasText: 'not a date' }).waitFor();
    await row.getByTestId('hours-holidays').fill('2026-12-25');
    await row.getByTestId('hours-save').click();
    await row.getByTestId('hours-state').filter({ hasText: 'closed now' }).waitFor();
    assert.match(await row.getByTestId('hours-summary').textContent(), /Closed every day · closed on 1 holiday/);
    await shot(admin, 'admin-hours-closed');
    const listed = await apiCall(hub, 'GET', '/api/categories');
    assert.equal(listed.data.find((c) => c.id === 'sales').open, false);

    // Weekdays 09:00–17:00 reads back as such.
    await row.getByTestId('hours-edit').click();
    for (const day of ['mon', 'tue', 'wed', 'thu', 'fri']) await row.getByTestId(`hours-${day}-open`).check();
    await row.getByTestId('hours-save').click();
    await row.getByTestId('hours-summary').filter({ hasText: '09:00–17:00' }).waitFor();
    assert.equal(await row.getByTestId('hours-summary').textContent(), 'Mon–Fri 09:00–17:00 · closed on 1 holiday');
    // Days with other hours, and a day apart, read as such.
    await row.getByTestId('hours-edit').click();
    await row.getByTestId('hours-wed-open').uncheck();
    await row.getByTestId('hours-sat-open').check();
    await fillIn(row, { 'hours-sat-from': '10:00', 'hours-sat-to': '14:00' });
    await row.getByTestId('hours-save').click();
    await row.getByTestId('hours-summary').filter({ hasText: 'Sat' }).waitFor();
    assert.equal(await row.getByTestId('hours-summary').textContent(), 'Mon–Tue, Thu–Fri 09:00–17:00 · Sat 10:00–14:00 · closed on 1 holiday');
    await shot(admin, 'admin-hours-week');

    await row.getByTestId('hours-edit').click();
    await row.getByTestId('hours-always').click();
    await row.getByTestId('hours-summary').filter({ hasText: 'Always open' }).waitFor();
    await row.getByTestId('hours-state').filter({ hasText: 'open now' }).waitFor();
    assert.equal((await apiCall(hub, 'GET', '/api/categories')).data.find((c) => c.id === 'sales').open, true);
  });
});

test('an admin sets the widget look on the settings view and the widget serves it', async () => {
  await withShots('admin-widget', async (pages) => {
    const [admin] = await openPages(browser, pages, [{ width: 390, height: 844 }]);
    await adminSignsIn(admin, hub, 'settings', { enter: true });
    await admin.getByTestId('widget-source').filter({ hasText: "server's settings" }).waitFor();
    assert.match(await admin.getByTestId('widget-snippet').textContent(), /<script src="http:\/\/127\.0\.0\.1:\d+\/widget\.js" async><\/script>/);
    await admin.getByTestId('widget-title').fill('');
    await admin.getByTestId('widget-save').click();
    await admin.getByTestId('widget-error').filter({ hasText: 'title must be 1 to 60 characters' }).waitFor();
    await fillIn(admin, { 'widget-title': 'Acme help', 'widget-color': '#0f766e', 'widget-greeting': 'Hello from Acme!' });
    await admin.getByTestId('widget-topic-billing').check();
    await admin.getByTestId('widget-save').click();
    await admin.getByTestId('widget-source').filter({ hasText: 'Saved' }).waitFor();
    await shot(admin, 'admin-widget-settings');
    const served = await apiCall(hub, 'GET', '/api/widget');
    assert.deepEqual([served.data.title, served.data.color, served.data.greeting, served.data.categories], ['Acme help', '#0f766e', 'Hello from Acme!', ['billing']]);
    // The widget page itself greets with it (shown while someone is online to answer).
    const [widget] = await openPages(browser, pages, 1);
    await widget.goto(`${hub.url}/widget.html`);
    await widget.getByTestId('widget-greeting').filter({ hasText: 'Hello from Acme!' }).waitFor({ state: 'attached' });
    // Only the topic the admin chose is offered.
    await widget.getByTestId('category-billing').waitFor();
    assert.equal(await widget.getByTestId('category-sales').count(), 0);
    await admin.getByTestId('widget-reset').click();
    await admin.getByTestId('widget-source').filter({ hasText: "server's settings" }).waitFor();
    assert.equal((await apiCall(hub, 'GET', '/api/widget')).data.title, 'Switchboard');
    const width = await admin.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 390, `the settings view overflows a phone: ${width}px`);
  });
});

/** Signs in on admin.html at `view` and waits for its navigation. */
async function adminAt(page, at, viewName = 'dashboard') {
  await adminSignsIn(page, at, viewName, { enter: true });
  await page.locator('#nav:not([hidden])').waitFor();
}

test('on a phone the admin\'s sections are one row of tabs that scrolls, not half the screen', async () => {
  await withShots('admin-phone-nav', async (pages) => {
    const [admin] = await openPages(browser, pages, [{ width: 390, height: 844 }]);
    await adminAt(admin, hub);
    const nav = await admin.evaluate(() => {
      const links = [...document.querySelectorAll('#nav a')];
      const tops = new Set(links.map((a) => Math.round(a.getBoundingClientRect().top)));
      const who = document.getElementById('who');
      return {
        rows: tops.size, header: document.querySelector('header.app').getBoundingClientRect().height, pageWidth: document.documentElement.scrollWidth,
        who: who.textContent, whoCut: who.scrollWidth > who.clientWidth,
      };
    });
    // The admin's name is whole on a phone, not "Adminis…".
    assert.deepEqual([nav.who, nav.whoCut], ['Administrator', false], JSON.stringify(nav));
    assert.equal(nav.rows, 1, `the tabs are one row: ${JSON.stringify(nav)}`);
    assert.ok(nav.header <= 120, `the header is at most two short rows: ${nav.header}px`);
    assert.ok(nav.pageWidth <= 390, `the page does not scroll sideways: ${nav.pageWidth}px`);
    await shot(admin, 'admin-phone-nav');
    // A tab off the edge is reached by scrolling the row, and once chosen it is in view.
    await view(admin, 'Settings');
    await admin.getByTestId('widget-snippet').waitFor();
    const current = await admin.locator('#nav a[aria-current="page"]').boundingBox();
    assert.ok(current.x >= 0 && current.x + current.width <= 390, `the current tab is in view: ${JSON.stringify(current)}`);
    await admin.reload();
    await admin.locator('#nav a[aria-current="page"]').filter({ hasText: 'Settings' }).waitFor();
    await admin.waitForFunction(() => {
      const r = document.querySelector('#nav a[aria-current="page"]').getBoundingClientRect();
      return r.left >= 0 && r.right <= 390;
    });
    await admin.getByTestId('sign-out').waitFor();
  });
});

test('the widget snippet names the hub\'s PUBLIC_URL, not the address the admin came from', async () => {
  await withShots('admin-public-url', async (pages) => {
    const own = await startHub({ PUBLIC_URL: 'https://help.example.com/' });
    try {
      const [admin] = await openPages(browser, pages, 1);
      await adminAt(admin, own, 'settings');
      await admin.getByTestId('widget-snippet').filter({ hasText: 'widget.js' }).waitFor();
      assert.equal(await admin.getByTestId('widget-snippet').textContent(), '<script src="https://help.example.com/widget.js" async></script>');
      await shot(admin, 'admin-widget-public-url');
    } finally {
      await own.stop();
    }
  });
});

test('a fresh desk shows the admin how to start: a category, an agent, the widget', async () => {
  await withShots('admin-first-run', async (pages) => {
    const fresh = await startHub();
    try {
      const [admin] = await openPages(browser, pages, 1);
      await adminAt(admin, fresh);
      const guide = admin.getByTestId('first-run');
      await guide.waitFor();
      const step = (name) => guide.locator(`[data-testid="first-run-step"][data-step="${name}"]`);
      // The desk starts with categories; no agent yet; the widget not placed.
      assert.equal(await step('categories').getAttribute('data-done'), 'true');
      assert.equal(await step('agents').getAttribute('data-done'), 'false');
      assert.equal(await step('widget').getAttribute('data-done'), 'false');
      assert.match(await step('categories').textContent(), /General/);
      await shot(admin, 'admin-first-run');
      // Each step leads to its view.
      await step('agents').getByRole('link').click();
      await admin.locator('#nav a[aria-current="page"]').filter({ hasText: 'Agents' }).waitFor();
      await fillIn(admin, { 'agent-username': 'una', 'agent-display-name': 'Una', 'agent-password': 'una-password' });
      await admin.getByTestId('agent-category-general').check();
      await admin.getByTestId('agent-submit').click();
      await admin.locator('[data-testid="agent-row"][data-username="una"]').waitFor();
      await view(admin, 'Dashboard');
      await step('agents').and(admin.locator('[data-done="true"]')).waitFor();
      await step('widget').getByRole('link').click();
      await admin.locator('#nav a[aria-current="page"]').filter({ hasText: 'Settings' }).waitFor();
      await admin.getByTestId('widget-copy').click();
      await view(admin, 'Dashboard');
      await step('widget').and(admin.locator('[data-done="true"]')).waitFor();
      // Every step done: the guide says so and can be put away for good.
      await guide.getByTestId('first-run-hide').click();
      await guide.waitFor({ state: 'hidden' });
      await admin.reload();
      await admin.getByTestId('stat-agents-online').waitFor();
      assert.equal(await guide.isVisible(), false, 'put away for good');
    } finally {
      await fresh.stop();
    }
  });
});
