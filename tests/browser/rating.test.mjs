// Rating a chat that ended, on the customer page at phone width: stars (or thumbs, per
// RATING_SCALE) as radio buttons, an optional comment, Send, then "Thanks"; the agent's
// console hears of it, the archive shows it, and the form passes axe and fits 390 px.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHub, newPage, createAgent, agentSignsIn, customerJoins, apiCall, adminToken, withShots, shot, hubAndBrowser, startForFile, openPages, expectClean } from './helpers.mjs';

const PHONE = { width: 390, height: 844 };

let hub, browser, thumbsHub;
startForFile(async () => ({ ...(await hubAndBrowser()), thumbsHub: await startHub({ RATING_SCALE: 'thumbs' }) }),
  (started) => ({ hub, browser, thumbsHub } = started));

/** A customer (phone, CSP bypassed for axe) and an agent in a chat the agent ends. */
async function endedChat(pages, on, agentName, customerName) {
  const agent = await createAgent(on, { username: agentName.toLowerCase(), display_name: agentName, categories: ['general'] });
  const [agentPage] = await openPages(browser, pages, 1);
  await agentSignsIn(agentPage, on, agent);
  const customer = await newPage(browser, PHONE, { bypassCSP: true });
  pages.push(customer);
  await customerJoins(customer, on, 'general', customerName);
  const panel = agentPage.locator(`[data-testid="chat-panel"][data-customer="${customerName}"]`);
  await panel.waitFor();
  const chatId = await panel.getAttribute('data-chat-id');
  await panel.getByTestId('end-chat').click();
  await customer.getByTestId('rating').waitFor();
  return { agentPage, customer, panel, chatId };
}

test('after the chat the customer rates it with stars and a comment, once', () => withShots('rating-stars', async (pages) => {
  const { customer, panel, chatId } = await endedChat(pages, hub, 'Rosa', 'Rex');
  const form = customer.getByTestId('rating');
  assert.equal(await form.getAttribute('data-scale'), 'stars');
  const width = await customer.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= PHONE.width, `no sideways scrolling (scrollWidth ${width})`);
  await expectClean(customer, "the customer's rating form");

  // Send without a choice: told to choose.
  await customer.getByTestId('rating-send').click();
  await customer.getByTestId('rating-error').filter({ hasText: 'Choose' }).waitFor();
  // Radio buttons, named for screen readers; arrows move between them.
  const radios = form.getByRole('radio');
  assert.equal(await radios.count(), 5);
  // The visible star is the radio's label: a tap on it chooses.
  await form.locator('label[for="rating-3"]').click();
  assert.equal(await customer.getByRole('radio', { name: '3 stars' }).isChecked(), true);
  await customer.getByRole('radio', { name: '3 stars' }).press('ArrowRight');
  assert.equal(await customer.getByRole('radio', { name: '4 stars' }).isChecked(), true);
  await customer.getByLabel('Comment (optional)').fill('Helpful, thanks');
  await shot(customer, 'customer-rating-phone');
  await customer.getByTestId('rating-send').click();
  await customer.getByTestId('rating-thanks').filter({ hasText: 'Thanks' }).waitFor();
  assert.equal(await customer.getByTestId('rating').count(), 0);

  // The agent's console hears of it.
  await panel.getByTestId('chat-rated').filter({ hasText: '4 of 5' }).filter({ hasText: 'Helpful, thanks' }).waitFor();
  // The archive has it; a second rating is refused.
  const admin = await adminToken(hub);
  let conversation;
  for (let i = 0; i < 50; i++) {
    conversation = await apiCall(hub, 'GET', `/api/conversations/${chatId}`, undefined, admin);
    if (conversation.status === 200) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.deepEqual([conversation.data.rating.score, conversation.data.rating.comment], [4, 'Helpful, thanks']);
}));

test('a thumbs desk asks for thumbs up or down', () => withShots('rating-thumbs', async (pages) => {
  const { customer, panel } = await endedChat(pages, thumbsHub, 'Tess', 'Tom');
  const form = customer.getByTestId('rating');
  assert.equal(await form.getAttribute('data-scale'), 'thumbs');
  assert.equal(await form.getByRole('radio').count(), 2);
  await form.locator('label[for="rating-1"]').click();
  assert.equal(await customer.getByRole('radio', { name: 'Good', exact: true }).isChecked(), true);
  await customer.getByTestId('rating-send').click();
  await customer.getByTestId('rating-thanks').waitFor();
  await panel.getByTestId('chat-rated').filter({ hasText: '👍' }).waitFor();
  // Starting a new chat clears the thanks.
  await customer.getByTestId('new-chat-button').click();
  assert.equal(await customer.getByTestId('rating-thanks').count(), 0);
}));
