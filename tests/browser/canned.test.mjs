// Canned replies in the agent console: "/" at the start of the composer opens a
// listbox of the replies for the chat's category, filtered as the agent types; arrows
// and Enter insert one, {customer} and {agent} filled in, into the composer WITHOUT
// sending it; the next Enter sends the (edited) text. Escape closes the picker.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { newPage, createAgent, agentSignsIn, apiCall, adminToken, withShots, shot, hubAndBrowser, stopAll, openPages, adminSignsIn, joinedChat, fillIn, expectClean } from './helpers.mjs';

let hub;
let browser;
before(async () => { ({ hub, browser } = await hubAndBrowser()); });
after(() => stopAll(browser, hub));

/** In a chat panel: types `typed` into the message box, which opens the canned replies' picker. */
async function pickerAfterTyping(panel, typed) {
  const input = panel.getByTestId('message-input');
  await input.click();
  await input.pressSequentially(typed);
  const picker = panel.getByRole('listbox', { name: 'Canned replies' });
  await picker.waitFor();
  return { input, picker };
}

test('"/" in the console inserts a filled canned reply into the composer, sent only on Enter', () => withShots('canned', async (pages) => {
  const admin = await adminToken(hub);
  for (const reply of [
    { shortcut: 'hello', title: 'Greeting', text: 'Hello {customer}, I am {agent}. How can I help?' },
    { shortcut: 'refund', title: 'Refund times', text: 'Refunds take 5 days.', categories: ['billing'] },
    { shortcut: 'help', title: 'More help', text: 'Anything else, {customer}?', categories: ['sales'] },
  ]) {
    const res = await apiCall(hub, 'POST', '/api/admin/canned-replies', reply, admin);
    assert.equal(res.status, 201, JSON.stringify(res.data));
  }
  const agent = await createAgent(hub, { username: 'cora', display_name: 'Cora', categories: ['sales', 'billing'] });
  // CSP bypassed so the test can inject axe.
  const agentPage = await newPage(browser, undefined, { bypassCSP: true, colorScheme: 'dark' });
  pages.push(agentPage);
  await agentSignsIn(agentPage, hub, agent);
  const [customer] = await openPages(browser, pages, [{ width: 390, height: 844 }]);
  const panel = await joinedChat(customer, agentPage, hub, 'sales', 'Dana');
  const { input, picker } = await pickerAfterTyping(panel, '/');
  assert.equal(await input.getAttribute('aria-controls'), await picker.getAttribute('id'));
  // The open picker passes axe (roles, names, contrast in dark mode).
  await expectClean(agentPage, "the agent console");
  await panel.getByTestId('canned-status').filter({ hasText: '2 canned replies' }).waitFor({ state: 'attached' });
  // Only the replies for this chat's category (sales): not the billing one.
  const options = picker.getByRole('option');
  assert.deepEqual(await options.evaluateAll((os) => os.map((o) => o.dataset.shortcut)), ['hello', 'help']);
  // Filtered as they type, by shortcut or title.
  await input.pressSequentially('gree');
  assert.deepEqual(await options.evaluateAll((os) => os.map((o) => o.dataset.shortcut)), ['hello']);
  // Escape closes it and leaves the text.
  await input.press('Escape');
  await picker.waitFor({ state: 'hidden' });
  assert.equal(await input.inputValue(), '/gree');
  // It stays closed while the agent goes on typing this message.
  await input.pressSequentially('t');
  await agentPage.waitForTimeout(200);
  assert.equal(await picker.isHidden(), true);
  assert.equal(await input.getAttribute('aria-activedescendant'), null);

  await input.fill('');
  await input.pressSequentially('/he');
  await picker.waitFor();
  assert.deepEqual(await options.evaluateAll((os) => os.map((o) => o.dataset.shortcut)), ['hello', 'help']);
  await input.press('ArrowDown');
  assert.equal(await options.nth(1).getAttribute('aria-selected'), 'true');
  await shot(agentPage, 'agent-canned-picker');
  assert.equal(await input.getAttribute('aria-activedescendant'), await options.nth(1).getAttribute('id'));
  await input.press('ArrowUp');
  assert.equal(await options.nth(0).getAttribute('aria-selected'), 'true');
  await input.press('Enter');
  await picker.waitFor({ state: 'hidden' });
  assert.equal(await input.inputValue(), 'Hello Dana, I am Cora. How can I help?');
  // Not sent: nothing in either transcript.
  await agentPage.waitForTimeout(400);
  assert.equal(await panel.getByTestId('message').count(), 0);
  assert.equal(await customer.getByTestId('message').count(), 0);

  // Edited, then sent with Enter.
  await input.press('End');
  await input.pressSequentially(' :)');
  await input.press('Enter');
  await customer.getByTestId('message').filter({ hasText: 'Hello Dana, I am Cora. How can I help? :)' }).waitFor();
  assert.equal(await input.inputValue(), '');

  // Tab inserts too.
  await input.pressSequentially('/help');
  await picker.waitFor();
  await input.press('Tab');
  assert.equal(await input.inputValue(), 'Anything else, Dana?');

  // A message that starts with "/" and matches no reply is sent as it is.
  await input.fill('');
  await input.pressSequentially('/etc/hosts is the file');
  await panel.getByTestId('canned-none').waitFor();
  await input.press('Enter');
  await customer.getByTestId('message').filter({ hasText: '/etc/hosts is the file' }).waitFor();
}));

test('an agent keeps their own replies in "My replies" and the picker offers them', () => withShots('my-replies', async (pages) => {
  const agent = await createAgent(hub, { username: 'milo', display_name: 'Milo', categories: ['general'] });
  const [page] = await openPages(browser, pages, 1);
  await agentSignsIn(page, hub, agent);
  await page.getByTestId('my-replies').locator('summary').click();
  await fillIn(page, { 'my-reply-shortcut': 'bye', 'my-reply-title': 'Goodbye', 'my-reply-text': 'Bye {customer}, have a good day!' });
  await page.getByTestId('my-reply-save').click();
  await page.locator('[data-testid="my-reply"][data-shortcut="bye"]').waitFor();
  // A taken shortcut is refused with the hub's message.
  await fillIn(page, { 'my-reply-shortcut': 'bye', 'my-reply-title': 'Again', 'my-reply-text': 'Again' });
  await page.getByTestId('my-reply-save').click();
  await page.getByTestId('my-reply-error').filter({ hasText: 'taken' }).waitFor();

  const [customer] = await openPages(browser, pages, 1);
  const panel = await joinedChat(customer, page, hub, 'general', 'Ezra');
  const input = panel.getByTestId('message-input');
  await input.click();
  await input.pressSequentially('/by');
  await panel.getByRole('option').filter({ hasText: 'Goodbye' }).waitFor();
  await input.press('Enter');
  assert.equal(await input.inputValue(), 'Bye Ezra, have a good day!');
}));

test('at 1366×768 the "/" picker opens above the message box with the replies in view, and fills a first name', () => withShots('canned-fit', async (pages) => {
  const admin = await adminToken(hub);
  const replies = [
    { shortcut: 'tgreet', title: 'Greeting by first name', text: 'Hi {customer_first_name}, {agent} here. How can I help?' },
    { shortcut: 'treboot', title: 'Restart the router', text: 'Please restart your router.' },
    { shortcut: 'tcable', title: 'Check the cable', text: 'Is the cable plugged in?' },
    { shortcut: 'tlights', title: 'Which lights are on', text: 'Which lights are on?' },
    { shortcut: 'tticket', title: 'Ticket opened', text: 'I opened a ticket for you.' },
    { shortcut: 'tengineer', title: 'Engineer visit', text: 'An engineer will call you.' },
    { shortcut: 'tthanks', title: 'Thanks for waiting', text: 'Thanks for waiting, {customer}.' },
  ];
  for (const reply of replies) {
    const res = await apiCall(hub, 'POST', '/api/admin/canned-replies', { ...reply, categories: ['technical'] }, admin);
    assert.equal(res.status, 201, JSON.stringify(res.data));
  }
  const agent = await createAgent(hub, { username: 'tess', display_name: 'Tess', categories: ['technical'] });
  const [agentPage] = await openPages(browser, pages, [{ width: 1366, height: 768 }]);
  await agentSignsIn(agentPage, hub, agent);
  const [customer] = await openPages(browser, pages, 1);
  const panel = await joinedChat(customer, agentPage, hub, 'technical', 'Dana Maria Scully');
  const { input, picker } = await pickerAfterTyping(panel, '/t');
  await panel.getByRole('option').nth(6).waitFor();
  // The list opens upwards, over the transcript, with every reply readable at once: none
  // below the message box, none cut off by the window.
  const fit = await agentPage.evaluate(() => {
    const box = document.querySelector('[data-testid="chat-panel"]:not([hidden]) [data-testid="message-input"]').getBoundingClientRect();
    const list = document.querySelector('[data-testid="chat-panel"]:not([hidden]) [data-testid="canned-picker"]');
    const l = list.getBoundingClientRect();
    const options = [...list.querySelectorAll('[role="option"]')];
    const whole = options.filter((o) => {
      const r = o.getBoundingClientRect();
      return r.top >= Math.max(0, l.top) - 0.5 && r.bottom <= Math.min(window.innerHeight, l.bottom) + 0.5;
    });
    return { listBottom: l.bottom, boxTop: box.top, boxBottom: box.bottom, options: options.length, whole: whole.length, height: window.innerHeight, scrolled: window.scrollY };
  });
  assert.ok(fit.options >= 7, JSON.stringify(fit));
  assert.ok(fit.listBottom <= fit.boxTop + 1, `the picker opens above the message box: ${JSON.stringify(fit)}`);
  assert.ok(fit.whole >= 6, `at least six replies in view at once: ${JSON.stringify(fit)}`);
  assert.ok(fit.boxBottom <= fit.height, `the message box stays in view: ${JSON.stringify(fit)}`);
  await shot(agentPage, 'agent-canned-picker-1366', { fullPage: false });
  await input.pressSequentially('greet');
  await input.press('Enter');
  assert.equal(await input.inputValue(), 'Hi Dana, Tess here. How can I help?');
  // The hints name the placeholder.
  await agentPage.getByTestId('my-replies').locator('summary').click();
  assert.match(await agentPage.locator('#my-reply-hint').textContent(), /\{customer_first_name\}/);
}));

test('admins manage the desk\'s canned replies in the #canned view', () => withShots('admin-canned', async (pages) => {
  const [page] = await openPages(browser, pages, 1);
  await adminSignsIn(page, hub, 'canned');
  await page.getByTestId('canned').waitFor();
  await fillIn(page, { 'canned-shortcut': 'wait', 'canned-title': 'Please wait', 'canned-text': 'One moment please, {customer}.' });
  await page.getByTestId('canned-category-billing').check();
  await page.getByTestId('canned-save').click();
  const row = page.locator('[data-testid="canned-row"][data-shortcut="wait"]');
  await row.filter({ hasText: 'Billing' }).waitFor();
  // A bad shortcut is refused with the hub's message.
  await fillIn(page, { 'canned-shortcut': 'Not OK', 'canned-title': 'x', 'canned-text': 'x' });
  await page.getByTestId('canned-save').click();
  await page.getByTestId('canned-error').filter({ hasText: 'shortcut' }).waitFor();
  // Edit: for all categories.
  await row.getByTestId('canned-edit').click();
  await page.getByTestId('canned-category-billing').uncheck();
  await page.getByTestId('canned-save').click();
  await row.filter({ hasText: 'all categories' }).waitFor();
  await row.getByTestId('canned-delete').click();
  await row.waitFor({ state: 'detached' });
}));
