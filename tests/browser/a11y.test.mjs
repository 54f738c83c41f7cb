// An automated accessibility pass (axe-core) over every page, signed out and signed in,
// at desktop and phone sizes: no serious or critical violation. axe checks what a
// machine can (names, roles, contrast, landmarks); the pages' own tests cover focus and
// keyboard use.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createAgent, agentSignsIn, customerJoins, apiCall, adminToken, ADMIN_PASSWORD, hubAndBrowser, stopAll, sendMessage, expectClean, violations, waitMs } from './helpers.mjs';

const SIZES = {
  desktop: { viewport: { width: 1280, height: 860 } },
  phone: { viewport: { width: 390, height: 844 } },
  // Dark mode follows the system preference: its colours are checked too.
  'desktop, dark': { viewport: { width: 1280, height: 860 }, colorScheme: 'dark' },
};

let hub;
let browser;
before(async () => { ({ hub, browser } = await hubAndBrowser()); });
after(() => stopAll(browser, hub));

/** A page whose context lets the test inject axe (the pages' CSP forbids inline scripts). */
async function pageAt(size) {
  const context = await browser.newContext({ ...SIZES[size], bypassCSP: true });
  context.setDefaultTimeout(waitMs(15000));
  return context.newPage();
}

async function signIn(page, username, password) {
  await page.getByTestId('username').fill(username);
  await page.getByTestId('password').fill(password);
  await page.getByTestId('password').press('Enter');
}

for (const size of Object.keys(SIZES)) {
  test(`every page passes axe with no serious violation (${size})`, async () => {
    const agent = await createAgent(hub, { username: `axe-${size.replace(/\W+/g, '-')}`, display_name: `Axe ${size}`, categories: ['general'], max_chats: 2 });
    const page = await pageAt(size);
    try {
      // The customer page: topics, the join form, waiting, chatting.
      await page.goto(`${hub.url}/`);
      await page.getByTestId('category-general').waitFor();
      await expectClean(page, 'customer: topics');
      // Nobody online in General yet: the notice and message form before the line.
      await page.getByTestId('category-general').click();
      await page.getByTestId('offline-form').waitFor();
      await expectClean(page, 'customer: nobody online, the message form');
      await page.getByTestId('offline-name').fill('Ada');
      await page.getByTestId('offline-email').fill('ada@example.com');
      await page.getByTestId('offline-text').fill('Please call me back.');
      await page.getByTestId('offline-send').click();
      await page.getByTestId('offline-sent').waitFor();
      await expectClean(page, 'customer: message left');
      const staff = await pageAt(size);
      await agentSignsIn(staff, hub, agent);
      // The console's work list: the offline message unassigned, its reply dialog open.
      await staff.getByRole('button', { name: /^Unassigned/ }).click();
      await staff.getByTestId('conversation-reply').first().click();
      await staff.getByTestId('conversation-reply-dialog').waitFor();
      await expectClean(staff, 'agent console: an offline message\'s reply dialog');
      await staff.keyboard.press('Escape');
      await customerJoins(page, hub, 'general', 'Ada');
      await page.getByTestId('session-title').filter({ hasText: 'Chatting with' }).waitFor();
      await sendMessage(page, 'Hello');
      await page.getByTestId('message-time').first().waitFor();
      await expectClean(page, 'customer: chatting');
      await expectClean(staff, 'agent console with a chat');
      // The Transfer dialog, its lists filled in.
      await staff.getByTestId('transfer-button').click();
      await staff.getByTestId('transfer-category').first().waitFor();
      await expectClean(staff, 'agent console: the transfer dialog');
      await staff.keyboard.press('Escape');
      await staff.getByTestId('transfer-dialog').waitFor({ state: 'hidden' });
      // General in offer mode: a second customer (with what they came about) is offered
      // to the agent, who has room for one more chat.
      const token = await adminToken(hub);
      await apiCall(hub, 'PUT', '/api/admin/routing/general', { mode: 'offer' }, token);
      const second = await pageAt(size);
      await second.goto(`${hub.url}/`);
      await second.getByTestId('category-general').click();
      await second.getByTestId('name-input').fill('Bea');
      await second.getByTestId('first-message-input').fill('Where is my parcel?');
      await expectClean(second, 'customer: the join form with a first message');
      await second.getByTestId('join-button').click();
      await staff.getByTestId('offer-card').waitFor();
      await expectClean(staff, 'agent console with a chat offer');
      // Back to assign: the offer is withdrawn and Bea assigned at once.
      await apiCall(hub, 'PUT', '/api/admin/routing/general', { mode: 'assign' }, token);
      await staff.getByTestId('offer-card').waitFor({ state: 'detached' });
      // Ada's chat handed to Technical support's queue (nobody there): she waits with her transcript.
      // (On a phone the open conversation has the screen: back to the list first.)
      if (await staff.getByTestId('back-to-list').isVisible()) await staff.getByTestId('back-to-list').click();
      await staff.locator('[data-testid="chat-list-item"][data-customer="Ada"]').click();
      await staff.locator('[data-testid="chat-panel"][data-customer="Ada"] [data-testid="transfer-button"]').click();
      await staff.locator('[data-testid="transfer-category"][data-id="technical"]').click();
      await staff.getByTestId('transfer-submit').click();
      await page.getByTestId('transferred').waitFor();
      await page.getByTestId('place').filter({ hasText: /\d/ }).waitFor();
      await expectClean(page, 'customer: transferred, waiting in the new line');
      await expectClean(staff, 'agent console: a chat transferred away');
      await second.context().close();
      await staff.context().close();

      for (const [path, what] of [['/agent.html', 'agent sign-in'], ['/admin.html', 'admin sign-in'], ['/buddy.html', 'buddy list'],
        ['/book.html', 'booking'], ['/room.html?room=nope', 'room (unknown)'], ['/widget.html', 'chat widget'], ['/manage.html?token=nope', 'appointment page (bad link)'], ['/rate?token=nope', 'rating page (bad link)']]) {
        await page.goto(`${hub.url}${path}`);
        await page.waitForLoadState('networkidle');
        await expectClean(page, what);
      }

      // The admin's views, signed in.
      await page.goto(`${hub.url}/admin.html`);
      await signIn(page, 'admin', ADMIN_PASSWORD);
      await page.getByTestId('dashboard').waitFor();
      for (const view of ['dashboard', 'agents', 'categories', 'canned', 'archive', 'reports', 'calls', 'appointments', 'offline', 'settings']) {
        await page.goto(`${hub.url}/admin.html#${view}`);
        await page.waitForLoadState('networkidle');
        await expectClean(page, `admin: ${view}`);
      }
      // A category's chat hours editor, open.
      await page.goto(`${hub.url}/admin.html#categories`);
      await page.getByTestId('hours-edit').first().click();
      await page.getByTestId('hours-editor').waitFor();
      await expectClean(page, 'admin: chat hours editor');
    } finally {
      await page.context().close();
    }
  });
}

/** The scrolled box of `transcript`: whether it overflows, and its scrollTop. */
const scrollState = (transcript) => transcript.evaluate((t) => ({ overflows: t.scrollHeight > t.clientHeight + 1, top: t.scrollTop }));

/**
 * A long chat overflows its transcript: a keyboard user must be able to scroll back
 * through it (axe: scrollable-region-focusable), in the widget, on the customer page and
 * in the agent console. The short chats above never overflow.
 */
for (const size of Object.keys(SIZES)) {
  test(`a long transcript scrolls by keyboard: widget, customer page and agent console (${size})`, async () => {
    const slug = `long-${size.replace(/\W+/g, '-')}`;
    const admin = await adminToken(hub);
    await apiCall(hub, 'POST', '/api/admin/categories', { id: slug, name: `Long chat ${size}` }, admin);
    const agent = await createAgent(hub, { username: `axe-${slug}`, display_name: 'Lena', categories: [slug] });
    const staff = await pageAt(size);
    const customer = await pageAt(size);
    try {
      await agentSignsIn(staff, hub, agent);
      // The widget's page on its own (a site frames it): the topic chosen in advance.
      await customer.goto(`${hub.url}/widget.html?category=${slug}`);
      await customer.getByTestId('name-input').fill('Max');
      await customer.getByTestId('join-button').click();
      await customer.getByTestId('session-title').filter({ hasText: 'Chatting with Lena' }).waitFor();
      const panel = staff.locator('[data-testid="chat-panel"][data-customer="Max"]');
      await panel.waitFor({ state: 'attached' });
      if (!(await panel.isVisible())) await staff.locator('[data-testid="chat-list-item"][data-customer="Max"]').click();
      for (let i = 1; i <= 14; i += 1) {
        await sendMessage(customer, `Question ${i}: does the blue tent fit two people and their packs?`);
        await sendMessage(panel, `Answer ${i}: it does, with room for boots in the porch.`);
      }
      await customer.getByTestId('message').filter({ hasText: 'Answer 14:' }).getByTestId('message-time').waitFor();
      await panel.getByTestId('message').filter({ hasText: 'Answer 14:' }).getByTestId('message-time').waitFor();

      // Every page's violations first, then one verdict: each page is reported.
      const found = [];
      const check = async (page, what, transcript) => {
        assert.ok((await scrollState(transcript)).overflows, `${what}: the transcript overflows`);
        found.push(...(await violations(page)).map((v) => `${what}: ${v}`));
      };
      await check(customer, 'widget', customer.getByTestId('transcript'));
      const consoleTranscript = panel.getByTestId('transcript');
      await check(staff, 'agent console', consoleTranscript);
      // The customer page in the same tab carries the chat on, its transcript rebuilt.
      await customer.goto(`${hub.url}/`);
      await customer.getByTestId('message').filter({ hasText: 'Answer 14:' }).waitFor();
      await customer.getByTestId('connection-state').filter({ hasText: 'connected' }).waitFor();
      const pageTranscript = customer.getByTestId('transcript');
      await check(customer, 'customer page', pageTranscript);
      assert.deepEqual(found, [], `a long chat: ${found.length} serious accessibility violations:\n${found.join('\n')}`);

      // By keyboard: the transcript takes focus and scrolls back with Home.
      for (const [page, transcript] of [[staff, consoleTranscript], [customer, pageTranscript]]) {
        await transcript.focus();
        assert.equal(await transcript.evaluate((t) => t === document.activeElement), true, 'the transcript takes focus');
        await page.keyboard.press('Home');
        await page.waitForFunction((t) => t.scrollTop === 0, await transcript.elementHandle());
      }
    } finally {
      await customer.context().close();
      await staff.context().close();
    }
  });
}

test("the representative's appointments page passes axe, empty and with an appointment", async () => {
  // A topic only Rosa serves: a booking of it is hers.
  const admin = await adminToken(hub);
  await apiCall(hub, 'POST', '/api/admin/categories', { id: 'axe-bookings', name: 'Bookings' }, admin);
  const agent = await createAgent(hub, { username: 'axe-appointments', display_name: 'Rosa', categories: ['axe-bookings'] });
  const freeDay = async (monthsAhead) => {
    const d = new Date();
    const month = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + monthsAhead, 1)).toISOString().slice(0, 7);
    const days = await apiCall(hub, 'GET', `/api/appointments/days?month=${month}&zone=UTC&category=axe-bookings`);
    return days.data.free_days[0];
  };
  const date = (await freeDay(0)) ?? (await freeDay(1));
  const slots = await apiCall(hub, 'GET', `/api/appointments/slots?date=${date}&zone=UTC&category=axe-bookings`);
  const start = slots.data.slots.find((s) => s.free).start;
  const made = await apiCall(hub, 'POST', '/api/appointments', { start, name: 'Nia', email: 'nia@example.com', comment: 'The return label', category: 'axe-bookings' });
  assert.equal(made.status, 201, JSON.stringify(made.data));
  for (const size of Object.keys(SIZES)) {
    const page = await pageAt(size);
    try {
      await agentSignsIn(page, hub, agent, { available: false });
      await page.goto(`${hub.url}/appointments.html`);
      await page.getByTestId('agent-zone').filter({ hasNotText: '…' }).waitFor();
      await expectClean(page, `appointments (${size})`);
      await page.getByTestId('agent-day').fill(date);
      await page.getByTestId('agent-appointment').filter({ hasText: 'Nia' }).waitFor();
      await expectClean(page, `appointments of ${date} (${size})`);
    } finally {
      await page.context().close();
    }
  }
});
