// The customer panel in the agent console: beside the chat, who the customer is (email,
// the page they came from, their local time, how long they waited) and their earlier
// conversations, each opened in place with its transcript and notes; at desktop size a
// column to the right of the chat, on a phone folded under it.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { newPage, createAgent, agentSignsIn, customerJoins, customerSocket, withShots, shot, hubAndBrowser, stopAll, openPages, expectClean } from './helpers.mjs';

const DETAILS = { email: 'omar@example.com', visitor: 'visitor-key-omar-0001', page: 'https://shop.example/checkout?step=2', zone: 'Asia/Tokyo' };

let hub;
let browser;
before(async () => { ({ hub, browser } = await hubAndBrowser()); });
after(() => stopAll(browser, hub));

/** A customer client on its own page's socket (as a third-party client would join). */
const joinAs = (page, name, text) => customerSocket(page, hub, { name, category: 'general', ...DETAILS }, text);

test('the panel shows the customer and opens an earlier conversation, at desktop and phone sizes', () => withShots('customer-panel', async (pages) => {
  const agent = await createAgent(hub, { username: 'kim', display_name: 'Kim', categories: ['general'] });
  const agentPage = await newPage(browser, { width: 1440, height: 900 }, { bypassCSP: true });
  pages.push(agentPage);
  await agentSignsIn(agentPage, hub, agent);

  // A first visit, with a note, ended by the agent.
  const [first] = await openPages(browser, pages, 1);
  await joinAs(first, 'Omar', 'my parcel never came');
  const panel1 = agentPage.locator('[data-testid="chat-panel"][data-customer="Omar"]');
  await panel1.getByTestId('transcript').getByText('my parcel never came').waitFor();
  const noteInput = panel1.getByRole('textbox', { name: 'Internal note' });
  await noteInput.fill('resent parcel, tracking 123');
  await noteInput.press('Enter');
  await panel1.getByTestId('note').waitFor();
  await panel1.getByTestId('customer-details').getByText('First visit', { exact: false }).or(panel1.getByTestId('no-earlier')).waitFor();
  await panel1.getByTestId('end-chat').click();
  await panel1.getByTestId('close-panel').click();
  await first.close();

  // The same customer comes back: the panel knows them.
  const [second] = await openPages(browser, pages, 1);
  await joinAs(second, 'Omar', 'still nothing');
  const panel = agentPage.locator('[data-testid="chat-panel"][data-customer="Omar"]').last();
  await panel.getByTestId('transcript').getByText('still nothing').waitFor();
  const details = panel.getByTestId('customer-panel');
  assert.equal(await details.evaluate((d) => d.open), true, 'open beside the chat on a wide screen');
  await details.getByTestId('customer-email').getByText('omar@example.com').waitFor();
  const cameFrom = details.getByTestId('customer-page');
  assert.equal(await cameFrom.getAttribute('href'), DETAILS.page);
  assert.equal(await cameFrom.getAttribute('rel'), 'noopener noreferrer');
  assert.match(await details.getByTestId('customer-local-time').innerText(), /Asia\/Tokyo/);
  await details.getByTestId('customer-waited').waitFor();
  assert.doesNotMatch(await details.innerText(), /visitor-key/, 'the visitor key is never shown');
  // The earlier conversation, opened in place: its lines and its note.
  const earlier = details.getByTestId('earlier-conversation');
  assert.equal(await earlier.count(), 1);
  assert.match(await earlier.innerText(), /Kim · 1 message/);
  // Its status, as the conversation list names it: ending the chat resolved it.
  const earlierStatus = earlier.getByTestId('earlier-status');
  assert.equal(await earlierStatus.innerText(), 'Resolved');
  assert.equal(await earlierStatus.getAttribute('data-status'), 'resolved');
  await earlier.locator('summary').click();
  await earlier.getByTestId('earlier-transcript').getByText('my parcel never came').waitFor();
  await earlier.getByTestId('earlier-note').getByText('resent parcel, tracking 123').waitFor();
  // Beside the chat: the panel is to the right of the transcript.
  const [chatBox, sideBox] = await Promise.all([panel.getByTestId('transcript').boundingBox(), details.boundingBox()]);
  assert.ok(sideBox.x > chatBox.x + chatBox.width - 1, `the panel is right of the chat: ${JSON.stringify({ chatBox, sideBox })}`);
  await shot(agentPage, 'customer-panel-desktop');
  await expectClean(agentPage, "the agent console");

  // On a phone the console opens the chat with the panel folded under it.
  await agentPage.setViewportSize({ width: 390, height: 844 });
  await agentPage.reload();
  await agentPage.getByTestId('chat-list').getByText('Omar').first().click();
  const phonePanel = agentPage.locator('[data-testid="chat-panel"][data-customer="Omar"]:not([hidden])');
  const folded = phonePanel.getByTestId('customer-panel');
  await folded.waitFor();
  assert.equal(await folded.evaluate((d) => d.open), false, 'folded on a phone');
  await folded.locator(':scope > summary').click();
  await folded.getByTestId('customer-email').waitFor();
  const [phoneChat, phoneSide] = await Promise.all([phonePanel.getByTestId('transcript').boundingBox(), folded.boundingBox()]);
  assert.ok(phoneSide.y >= phoneChat.y + phoneChat.height - 1, 'under the chat on a phone');
  await shot(agentPage, 'customer-panel-phone');
}));

test('the customer page tells the hub the browser and its time zone: a returning customer is recognised', () => withShots('customer-panel-return', async (pages) => {
  const agent = await createAgent(hub, { username: 'ida', display_name: 'Ida', categories: ['general'] });
  const [agentPage] = await openPages(browser, pages, [{ width: 1440, height: 900 }]);
  await agentSignsIn(agentPage, hub, agent);
  // One browser (one context: its storage kept), in Chicago, visits twice.
  const customer = await newPage(browser, { width: 390, height: 844 }, { timezoneId: 'America/Chicago' });
  pages.push(customer);
  await customerJoins(customer, hub, 'general', 'Quinn');
  let panel = agentPage.locator('[data-testid="chat-panel"][data-customer="Quinn"]');
  await panel.getByTestId('customer-local-time').filter({ hasText: 'America/Chicago' }).waitFor();
  await panel.getByTestId('no-earlier').waitFor();
  await panel.getByTestId('end-chat').click();
  await panel.getByTestId('close-panel').click();
  const again = await customer.context().newPage();
  await customerJoins(again, hub, 'general', 'Quinn');
  panel = agentPage.locator('[data-testid="chat-panel"][data-customer="Quinn"]');
  const earlier = panel.getByTestId('earlier-conversation');
  await earlier.waitFor();
  assert.match(await panel.getByTestId('customer-panel').innerText(), /found by this browser/);
}));
