// A site that signs its users in embeds the widget with the user's identity (the identifier
// and its HMAC-SHA256 under the desk's identity secret, made by the site's server): the
// customer chats on one browser (the admin made the secret on the admin page), then on another browser the same identity lists that
// conversation and continues it. A third browser with a forged hash sees no conversation
// at all, and the widget works as for anyone.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { newPage, createAgent, agentSignsIn, withShots, shot, hubBrowserAndShop, stopAll, adminToken, adminSignsIn, apiCall, panelOf } from './helpers.mjs';

let hub, browser, shop;
before(async () => { ({ hub, browser, shop } = await hubBrowserAndShop()); });
after(() => stopAll(browser, hub));

const IDENTIFIER = 'user-77 (Carla Ruiz)';
const chat = (page) => page.frameLocator('[data-testid="switchboard-widget"] >> [data-testid="widget-frame"]');

/** The shop's page with its widget tag carrying `attrs` (as the shop's server would render
 *  them for a signed-in user: set on the tag before the loader runs), the bubble clicked.
 *  Answers the list the frame asks for once the identity has arrived. */
async function shopPage(page, attrs) {
  await page.addInitScript((given) => {
    new MutationObserver((_, observer) => {
      const tag = document.querySelector('script[src$="/widget.js"]');
      if (!tag) return;
      for (const [k, v] of Object.entries(given)) tag.setAttribute(`data-${k}`, v);
      observer.disconnect();
    }).observe(document, { childList: true, subtree: true });
  }, attrs);
  const listed = page.waitForResponse((r) => r.url().endsWith('/api/visitor/conversations') && !!r.request().headers()['x-identifier-hash']);
  await page.goto(`${shop}/`);
  await page.getByTestId('switchboard-widget').getByTestId('widget-launcher').click();
  return listed;
}

test('a verified identity follows the customer to another browser; a forged hash sees nothing', () => withShots('identity', async (pages) => {
  // The admin makes the desk's identity secret on the widget settings (shown once).
  const admin = await newPage(browser);
  pages.push(admin);
  await adminSignsIn(admin, hub, 'settings');
  await admin.getByTestId('identity-state').filter({ hasText: 'Off' }).waitFor();
  await admin.getByTestId('identity-new').click();
  await admin.getByTestId('identity-state').filter({ hasText: 'On, with a secret made' }).waitFor();
  const secret = await admin.getByTestId('identity-secret').innerText();
  assert.match(secret, /^[0-9a-f]{64}$/);
  await shot(admin, 'identity-secret-made');
  const state = await apiCall(hub, 'GET', '/api/admin/identity-secret', undefined, await adminToken(hub));
  assert.equal(state.data.enabled, true);
  const hash = createHmac('sha256', secret).update(IDENTIFIER).digest('hex');
  // No preset topic (the shop's tag has one): the welcome screen lists her conversations.
  const identity = { category: '', identifier: IDENTIFIER, 'identifier-hash': hash, name: 'Carla Ruiz', email: 'carla@example.com' };

  const dana = await createAgent(hub, { username: 'dana', display_name: 'Dana', categories: ['sales'], max_chats: 2 });
  const agent = await newPage(browser);
  pages.push(agent);
  await agentSignsIn(agent, hub, dana);

  // Browser A: the site's name and email are filled in; she chats, then ends the chat.
  const laptop = await newPage(browser);
  pages.push(laptop);
  await shopPage(laptop, identity);
  await chat(laptop).getByTestId('category-sales').click();
  const nameInput = chat(laptop).getByTestId('name-input');
  await nameInput.waitFor();
  for (let i = 0; i < 150 && (await nameInput.inputValue()) === ''; i++) await laptop.waitForTimeout(100);
  assert.equal(await nameInput.inputValue(), 'Carla Ruiz');
  assert.equal(await chat(laptop).getByTestId('email-input').inputValue(), 'carla@example.com');
  await chat(laptop).getByTestId('join-button').click();
  await chat(laptop).getByTestId('session-title').filter({ hasText: 'Chatting with Dana' }).waitFor();
  await chat(laptop).getByTestId('message-input').fill('Where is my order 1042?');
  await chat(laptop).getByTestId('message-input').press('Enter');
  const panel = panelOf(agent, 'Carla Ruiz');
  await panel.getByTestId('message').filter({ hasText: 'Where is my order 1042?' }).waitFor();
  await chat(laptop).getByTestId('leave-button').click();
  await chat(laptop).getByTestId('confirm-end-button').click();
  await chat(laptop).getByTestId('rating').waitFor();

  // Browser C, the same identifier with a forged hash: no conversation listed, the topics as for anyone.
  const stranger = await newPage(browser);
  pages.push(stranger);
  const forged = await shopPage(stranger, { ...identity, 'identifier-hash': createHmac('sha256', 'guessed').update(IDENTIFIER).digest('hex') });
  assert.deepEqual((await forged.json()).conversations, []);
  await chat(stranger).getByTestId('category-sales').waitFor();
  assert.equal(await chat(stranger).getByTestId('earlier-conversation').count(), 0);
  assert.equal(await chat(stranger).getByTestId('earlier-conversations').isHidden(), true);

  // Browser B, a valid hash: her conversation is listed, and she continues it.
  const phone = await newPage(browser, { width: 390, height: 844 });
  pages.push(phone);
  await shopPage(phone, identity);
  const row = chat(phone).getByTestId('earlier-conversation').first();
  await row.waitFor();
  assert.match(await row.innerText(), /Where is my order 1042\?/);
  await shot(phone, 'identity-listed-on-another-browser');
  await row.getByTestId('continue-conversation').click();
  await chat(phone).getByTestId('conversation-continued').waitFor();
  await chat(phone).getByTestId('message').filter({ hasText: 'Where is my order 1042?' }).waitFor();
  await chat(phone).getByTestId('message-input').fill('Any news?');
  await chat(phone).getByTestId('message-input').press('Enter');
  await panelOf(agent, 'Carla Ruiz').getByTestId('message').filter({ hasText: 'Any news?' }).waitFor();
}));
