// The embeddable chat widget on a site of another origin: the hub's demo host
// (DEMO_HOST_PORT) serves a shop's pages with the widget's one script tag. The
// customer opens the bubble, joins, chats with an agent, moves to another page of
// the shop (a full page load) and finds the chat carried on; a reply while the chat
// is minimised shows a count on the bubble; on a phone the open chat fills the screen.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { newPage, createAgent, agentSignsIn, shot, withShots, stopAll, openPages, hubBrowserAndShop } from './helpers.mjs';

let hub;
let browser;
let shop;

before(async () => { ({ hub, browser, shop } = await hubBrowserAndShop({ WIDGET_TITLE: 'Trailhead help desk', WIDGET_COLOR: '#0f766e' })); });
after(() => stopAll(browser, hub));

const widget = (page) => page.getByTestId('switchboard-widget');
const launcher = (page) => widget(page).getByTestId('widget-launcher');
const chat = (page) => page.frameLocator('[data-testid="switchboard-widget"] >> [data-testid="widget-frame"]');

/**
 * `customer` joins in the widget as `name`, is connected to `agentName`, and says `text`,
 * which reaches the agent's panel for them; that panel.
 */
async function joinsAndSays(customer, agent, name, agentName, text) {
  await chat(customer).getByTestId('name-input').fill(name);
  await chat(customer).getByTestId('join-button').click();
  await chat(customer).getByTestId('session-title').filter({ hasText: `Chatting with ${agentName}` }).waitFor();
  const panel = agent.locator(`[data-testid="chat-panel"][data-customer="${name}"]`);
  await panel.waitFor();
  await chat(customer).getByTestId('message-input').fill(text);
  await chat(customer).getByTestId('message-input').press('Enter');
  await panel.getByTestId('message').filter({ hasText: text }).waitFor();
  return panel;
}

test('the widget on another site: open, chat, carry on across pages, unread badge, phone full screen', async () => {
  await withShots('widget', async (pages) => {
    const dana = await createAgent(hub, { username: 'dana', display_name: 'Dana', categories: ['sales'] });
    const [customer, agent] = await openPages(browser, pages, 2);

    // The shop's page with the bubble in the corner, on the shop's own origin.
    await customer.goto(`${shop}/`);
    assert.notEqual(new URL(customer.url()).origin, new URL(hub.url).origin);
    await launcher(customer).waitFor();
    await shot(customer, 'widget-closed');
    // The bubble wears the desk's colour (read cross-origin from /api/widget).
    await customer.waitForFunction(() => getComputedStyle(document.querySelector('#switchboard-widget')
      .shadowRoot.querySelector('.launcher')).backgroundColor === 'rgb(15, 118, 110)');

    // Nobody is online yet: the widget says so.
    await launcher(customer).click();
    await chat(customer).getByTestId('widget-title').filter({ hasText: 'Trailhead help desk' }).waitFor();
    await chat(customer).getByTestId('widget-status').filter({ hasText: 'Nobody is online' }).waitFor();
    // data-category="sales" chose the topic: nobody is online there, said before the
    // line, with the message form and the choice to wait anyway (the widget's general
    // "nobody is online" bar gives way to it).
    await chat(customer).getByTestId('offline-title').filter({ hasText: 'Nobody is online in Sales right now' }).waitFor();
    await chat(customer).getByTestId('widget-offline').waitFor({ state: 'hidden' });
    await shot(customer, 'widget-offline');

    // An agent signs in; the customer waits anyway, joins and is connected.
    await agentSignsIn(agent, hub, dana);
    await chat(customer).getByTestId('wait-anyway').click();
    const panel = await joinsAndSays(customer, agent, 'Erin', 'Dana', 'Do you ship to Canada?');
    // The agent's customer panel says where the customer came from: the shop's page.
    await panel.getByTestId('customer-page').filter({ hasText: `localhost:${new URL(shop).port}` }).waitFor();
    await panel.getByTestId('message-input').fill('We do, in 3 to 5 days.');
    await panel.getByTestId('send-button').click();
    await chat(customer).getByTestId('message').filter({ hasText: 'We do, in 3 to 5 days.' }).waitFor();
    await shot(customer, 'widget-chat');

    // A full page load on the shop: the chat is open again, with its transcript, and live.
    await customer.getByTestId('nav-pricing').click();
    await customer.getByTestId('host-heading').filter({ hasText: 'Pricing' }).waitFor();
    await chat(customer).getByTestId('message').filter({ hasText: 'We do, in 3 to 5 days.' }).waitFor();
    await chat(customer).getByTestId('session-title').filter({ hasText: 'Chatting with Dana' }).waitFor();
    await chat(customer).getByTestId('connection-state').filter({ hasText: 'connected' }).waitFor();
    await chat(customer).getByTestId('message-input').fill('And returns?');
    await chat(customer).getByTestId('message-input').press('Enter');
    await panel.getByTestId('message').filter({ hasText: 'And returns?' }).waitFor();

    // Minimised, then another page: the chat runs in the background; a reply shows a count.
    await chat(customer).getByTestId('widget-close').click();
    await customer.getByTestId('nav-about').click();
    await customer.getByTestId('host-heading').filter({ hasText: 'About us' }).waitFor();
    await customer.waitForFunction(() => !document.querySelector('#switchboard-widget')
      ?.shadowRoot.querySelector('.panel').classList.contains('open'));
    // The frame is there (a chat is in progress) though closed, and connected again.
    await chat(customer).getByTestId('connection-state').filter({ hasText: 'connected' }).waitFor({ state: 'attached' });
    await panel.getByTestId('message-input').fill('Within 60 days.');
    await panel.getByTestId('send-button').click();
    await panel.getByTestId('message-input').fill('Anything else?');
    await panel.getByTestId('send-button').click();
    await widget(customer).getByTestId('widget-badge').filter({ hasText: '2' }).waitFor();
    assert.match(await customer.title(), /^\(2\) New message/);
    await shot(customer, 'widget-unread');

    // Opening clears the count and shows the replies.
    await launcher(customer).click();
    await chat(customer).getByTestId('message').filter({ hasText: 'Anything else?' }).waitFor();
    await widget(customer).getByTestId('widget-badge').waitFor({ state: 'hidden' });
    assert.doesNotMatch(await customer.title(), /New message/);
  });
});

test('on a phone the open chat fills the screen', async () => {
  await withShots('widget-phone', async (pages) => {
    const [phone] = await openPages(browser, pages, [{ width: 390, height: 844 }]);
    await phone.goto(`${shop}/`);
    await launcher(phone).click();
    // Nobody is online in the preset topic: the message form shows first, full screen too.
    await chat(phone).getByTestId('offline-form').waitFor();
    const box = await widget(phone).getByTestId('widget-frame').boundingBox();
    assert.deepEqual([box.x, box.y, box.width, box.height], [0, 0, 390, 844]);
    await shot(phone, 'widget-phone-open');
    await chat(phone).getByTestId('widget-close').click();
    await launcher(phone).waitFor();
    await shot(phone, 'widget-phone-closed');
  });
});

test('only the allowed sites may frame the widget page; every other page keeps frame-ancestors none', async () => {
  const widgetPage = await fetch(`${hub.url}/widget.html`);
  const csp = widgetPage.headers.get('content-security-policy');
  assert.match(csp, new RegExp(`frame-ancestors 'self' ${shop.replace(/[.:/]/g, '\\$&')}`));
  assert.equal(widgetPage.headers.get('x-frame-options'), null);
  const customerPage = await fetch(`${hub.url}/`);
  assert.match(customerPage.headers.get('content-security-policy'), /frame-ancestors 'none'/);
  // A site not in the list gets no frame: Chromium refuses to render it.
  const other = await newPage(browser);
  try {
    await other.route('http://other.test/', (route) => route.fulfill({
      contentType: 'text/html',
      body: `<iframe data-testid="f" src="${hub.url}/widget.html?embed=1"></iframe>`,
    }));
    await other.goto('http://other.test/');
    await other.waitForTimeout(500);
    const frame = other.frames().find((f) => f.url().includes('/widget.html'));
    const title = frame ? await frame.evaluate(() => document.querySelector('[data-testid="widget-title"]')?.textContent).catch(() => null) : null;
    assert.equal(title ?? null, null, 'the widget page did not render inside a site that is not allowed');
  } finally {
    await other.context().close();
  }
});

// Last in this file: it leaves an agent of the shop's topic online.
test('a customer who ended their chat in the widget comes back later on the shop and continues it with the same agent', async () => {
  await withShots('widget-continuing', async (pages) => {
    const vera = await createAgent(hub, { username: 'vera-widget', display_name: 'Vera', categories: ['sales'], max_chats: 2 });
    const [customer, agent] = await openPages(browser, pages, 2);
    await agentSignsIn(agent, hub, vera);
    await customer.goto(`${shop}/`);
    await launcher(customer).click();
    const panel = await joinsAndSays(customer, agent, 'Noor', 'Vera', 'Is the blue tent back in stock?');
    await panel.getByTestId('message-input').fill('Next week, I will tell you.');
    await panel.getByTestId('send-button').click();
    await chat(customer).getByTestId('message').filter({ hasText: 'Next week, I will tell you.' }).waitFor();
    await chat(customer).getByTestId('leave-button').click();
    await chat(customer).getByTestId('confirm-end-button').click();
    await chat(customer).getByTestId('rating').waitFor();
    const context = customer.context();
    await customer.close();

    // Later, the same browser on the shop: the widget lists the conversation; Continue opens it.
    const back = await context.newPage();
    pages.push(back);
    await back.goto(`${shop}/`);
    await launcher(back).click();
    const row = chat(back).getByTestId('earlier-conversation').first();
    await row.waitFor();
    assert.equal(await row.getAttribute('data-status'), 'resolved');
    assert.match(await row.innerText(), /Vera: Next week, I will tell you\./);
    await shot(back, 'widget-continuing-list');
    await row.getByTestId('continue-conversation').click();
    await chat(back).getByTestId('message').filter({ hasText: 'Is the blue tent back in stock?' }).waitFor();
    const again = agent.locator('[data-testid="chat-panel"][data-customer="Noor"]');
    await chat(back).getByTestId('message-input').fill('Any news?');
    await chat(back).getByTestId('message-input').press('Enter');
    await again.getByTestId('message').filter({ hasText: 'Any news?' }).waitFor();
    await shot(back, 'widget-continuing-chat');
  });
});
