// Agent bots in the browser: the example bot (examples/faq-bot.mjs, run for real) answers
// a customer's question about opening hours, marked as the bot's on the customer page,
// then hands the conversation over; the agent's console shows the conversation with the
// bot's lines, marked "bot" and named after the bot, and the hand-over note.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { newPage, apiCall, adminToken, createAgent, agentSignsIn, customerJoins, sendMessage, panelOf, withShots, shot, hubAndBrowser, startForFile, waitMs } from './helpers.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
let hub, browser;
startForFile(() => hubAndBrowser(), (started) => ({ hub, browser } = started));

/** The example bot running for `hub` with `secret`, once it is welcomed. */
async function exampleBot(secret) {
  const child = spawn(process.execPath, ['--experimental-websocket', path.join(here, '..', '..', 'examples', 'faq-bot.mjs')], {
    env: { ...process.env, SWITCHBOARD_URL: hub.url.replace(/^http/, 'ws') + '/ws/bot', SWITCHBOARD_BOT_TOKEN: secret },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the example bot did not connect: ${output}`)), waitMs(10000));
    const seen = (chunk) => {
      output += chunk;
      if (output.includes('welcome')) { clearTimeout(timer); resolve(); }
    };
    child.stdout.on('data', seen);
    child.stderr.on('data', seen);
  });
  return child;
}

/** Names `bot` the bot of `category`, makes its token `name` and starts the example bot on it. */
async function botServing(category, name, bot) {
  const admin = await adminToken(hub);
  const named = await apiCall(hub, 'PUT', `/api/admin/category-bots/${category}`, { bot }, admin);
  assert.equal(named.status, 200, JSON.stringify(named.data));
  const token = await apiCall(hub, 'POST', '/api/admin/api-tokens', { name, scopes: ['bot'], bot }, admin);
  assert.equal(token.status, 201, JSON.stringify(token.data));
  return exampleBot(token.data.secret);
}

test("the agent's view of a conversation the bot handed over", () => withShots('bots', async (pages) => {
  const bot = await botServing('general', 'FAQ bot', 'Faq');
  try {
    const ann = await createAgent(hub, { username: 'ann', display_name: 'Ann', categories: ['general'], max_chats: 2 });
    const agent = await newPage(browser);
    const customer = await newPage(browser);
    pages.push(agent, customer);
    await agentSignsIn(agent, hub, ann);
    await customerJoins(customer, hub, 'general', 'Carla');

    await sendMessage(customer, 'What are your opening hours?');
    const answer = customer.getByTestId('message').filter({ hasText: '9:00 to 17:00' });
    await answer.getByTestId('by-bot').waitFor();
    await shot(customer, 'bots-customer-answered');

    await sendMessage(customer, 'My parcel arrived broken');
    const panel = panelOf(agent, 'Carla');
    await panel.waitFor();
    const botLine = panel.getByTestId('message').filter({ hasText: '9:00 to 17:00' });
    await botLine.getByTestId('by-bot').waitFor();
    assert.equal(await botLine.getByTestId('message-author').textContent(), 'Faq');
    await panel.getByTestId('message').filter({ hasText: 'My parcel arrived broken' }).waitFor();
    await panel.getByText('asked: My parcel arrived broken').first().waitFor();
    await shot(agent, 'bots-agent-handed-over');

    // The chat goes on with Ann.
    await sendMessage(panel, 'Hello Carla, Ann here.');
    await customer.getByTestId('message').filter({ hasText: 'Hello Carla, Ann here.' }).waitFor();
    await shot(customer, 'bots-customer-with-agent');

    // Ann's browser is gone (a crash); she signs in again in another one within the grace
    // period: the chat comes with the bot's note, the bot's line as Faq's and hers as hers.
    await agent.close();
    const again = await newPage(browser);
    pages.push(again);
    // Still available from before: no toggling.
    await agentSignsIn(again, hub, ann, { available: false });
    const panelAgain = panelOf(again, 'Carla');
    await panelAgain.waitFor();
    await panelAgain.getByText('asked: My parcel arrived broken').first().waitFor();
    const botAgain = panelAgain.getByTestId('message').filter({ hasText: '9:00 to 17:00' });
    assert.equal(await botAgain.getByTestId('message-author').textContent(), 'Faq');
    const ownAgain = panelAgain.getByTestId('message').filter({ hasText: 'Hello Carla, Ann here.' });
    const ownAuthor = await ownAgain.getByTestId('message-author').allTextContents();
    assert.ok(!ownAuthor.includes('Faq'), `her own line is not the bot's: ${ownAuthor}`);
    await shot(again, 'bots-agent-signed-in-again');
  } finally {
    bot.kill();
  }
}));

test('with nobody online, a category whose bot is connected goes straight to the bot', () => withShots('bots-nobody-online', async (pages) => {
  const bot = await botServing('sales', 'Sales bot', 'Salesbot');
  try {
    const customer = await newPage(browser);
    pages.push(customer);
    await customer.goto(`${hub.url}/`);
    await customer.getByTestId('category-sales').click();
    // The name form, not the "nobody is online" notice: the bot answers.
    await customer.getByTestId('name-input').waitFor();
    assert.equal(await customer.getByTestId('wait-anyway').count(), 0);
    await shot(customer, 'bots-nobody-online-name');
    await customer.getByTestId('name-input').fill('Sam');
    await customer.getByTestId('join-button').click();
    await customer.getByTestId('session').waitFor();
    await sendMessage(customer, 'What are your opening hours?');
    await customer.getByTestId('message').filter({ hasText: '9:00 to 17:00' }).getByTestId('by-bot').waitFor();
  } finally {
    bot.kill();
  }
}));
