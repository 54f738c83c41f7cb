// Internal notes in the agent console: an agent adds a note to a chat; it shows as an
// "Internal note" card in their transcript (and again after a reload), and never on the
// customer's page.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newPage, createAgent, agentSignsIn, withShots, shot, hubAndBrowser, startForFile, openPages, sendMessage, joinedChat, expectClean } from './helpers.mjs';

let hub, browser;
startForFile(() => hubAndBrowser(), (started) => ({ hub, browser } = started));

test('a note shows for the agent, survives a reload, and never reaches the customer', () => withShots('notes', async (pages) => {
  const agent = await createAgent(hub, { username: 'nora', display_name: 'Nora', categories: ['general'] });
  const agentPage = await newPage(browser, undefined, { bypassCSP: true });
  pages.push(agentPage);
  await agentSignsIn(agentPage, hub, agent);
  const [customer] = await openPages(browser, pages, [{ width: 390, height: 844 }]);
  const panel = await joinedChat(customer, agentPage, hub, 'general', 'Omar');

  const noteInput = panel.getByRole('textbox', { name: 'Internal note' });
  await noteInput.fill('Omar is a VIP: <b>refund</b> at once');
  await noteInput.press('Enter');
  const card = panel.getByTestId('note');
  await card.waitFor();
  assert.match(await card.innerText(), /Internal note/);
  assert.match(await card.innerText(), /Nora/);
  // Text, never HTML.
  assert.match(await card.innerText(), /<b>refund<\/b>/);
  assert.equal(await noteInput.inputValue(), '', 'the note box is cleared once sent');
  await shot(agentPage, 'notes-agent');

  // The customer and agent keep chatting; nothing of the note on the customer's page.
  await sendMessage(customer, 'hello?');
  await panel.getByTestId('transcript').getByText('hello?').waitFor();
  const customerText = await customer.locator('body').innerText();
  assert.doesNotMatch(customerText, /VIP|Internal note/);

  // A blank note is not sent; the page passes axe with a note shown.
  await noteInput.fill('   ');
  await noteInput.press('Enter');
  assert.equal(await panel.getByTestId('note').count(), 1);
  await expectClean(agentPage, "the agent console");

  // Reloaded, the console reads the chat's notes back.
  await agentPage.reload();
  const again = agentPage.locator('[data-testid="chat-panel"][data-customer="Omar"]');
  await again.getByTestId('note').waitFor();
  assert.match(await again.getByTestId('note').innerText(), /VIP/);
}));
