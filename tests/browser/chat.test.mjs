// Customer ↔ agent chats end to end: typing and draft preview, two chats at
// once without crossing, and a customer reload that resumes the chat.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { agentAndCustomerPages, createAgent, agentSignsIn, customerJoins, shot, withShots, hubAndBrowser, stopAll, openPages, sendMessage, panelOf, joinedChat, says } from './helpers.mjs';

let hub;
let browser;
before(async () => { ({ hub, browser } = await hubAndBrowser()); });
after(() => stopAll(browser, hub));

/** The panel on agent.html for the named customer. */
/** The customer's entry in the agent's chat list; a click opens that chat. */
const itemOf = (page, customer) => page.locator(`[data-testid="chat-list-item"][data-customer="${customer}"]`);

test('customer and agent chat with typing indicator and draft preview', async () => {
  await withShots('chat', async (pages) => {
    const { agent, customer } = await agentAndCustomerPages(browser, hub, pages, { username: 'alice', display_name: 'Alice', categories: ['sales'] }, { available: false });

    // Nobody available yet: the customer waits and sees their place.
    await customerJoins(customer, hub, 'sales', 'Carol');
    await assert.doesNotReject(customer.getByTestId('place').filter({ hasText: '1' }).waitFor());
    await customer.getByText('Connecting you to an agent').waitFor();
    await agent.getByTestId('queue-sales').filter({ hasText: '1 waiting' }).waitFor();
    await shot(customer, 'customer-waiting');

    await agent.getByTestId('availability-toggle').click();
    await customer.getByTestId('session-title').filter({ hasText: 'Chatting with Alice' }).waitFor();
    const panel = panelOf(agent, 'Carol');
    await panel.waitFor();

    // The agent sees the unsent draft and the typing indicator before anything is sent.
    await customer.getByTestId('message-input').pressSequentially('Hello, I need', { delay: 20 });
    await panel.getByTestId('draft-preview').filter({ hasText: 'Hello, I need' }).waitFor();
    await panel.getByTestId('typing-indicator').filter({ hasText: 'Carol is typing' }).waitFor();
    assert.equal(await panel.getByTestId('message').count(), 0, 'nothing sent yet');

    await customer.getByTestId('message-input').pressSequentially(' a refund', { delay: 10 });
    await customer.getByTestId('message-input').press('Enter');
    const received = panel.getByTestId('message').filter({ hasText: 'Hello, I need a refund' });
    await received.waitFor();
    await panel.getByTestId('draft-preview').waitFor({ state: 'hidden' });
    assert.equal(await received.getAttribute('data-mine'), 'false');
    await panel.getByTestId('typing-indicator').filter({ hasText: /^$/ }).waitFor();

    // The agent answers; the customer sees the typing indicator, then the reply on the left.
    await panel.getByTestId('message-input').pressSequentially('Sure, ', { delay: 20 });
    await customer.getByTestId('typing-indicator').filter({ hasText: 'Alice is typing' }).waitFor();
    await panel.getByTestId('message-input').pressSequentially('order number?', { delay: 10 });
    await panel.getByTestId('send-button').click();
    const reply = customer.getByTestId('message').filter({ hasText: 'Sure, order number?' });
    await reply.waitFor();
    const mine = customer.getByTestId('message').filter({ hasText: 'Hello, I need a refund' });
    await mine.locator('[data-testid="message-time"]').waitFor();
    assert.match(await reply.getByTestId('message-time').textContent(), /\d{1,2}[:.]\d{2}/);

    // Own messages on the right, the other side's on the left, on both pages (the chat
    // convention of every messenger).
    const right = (box) => box.x + box.width;
    const [mineBox, replyBox] = [await mine.boundingBox(), await reply.boundingBox()];
    assert.ok(mineBox.x > replyBox.x && right(mineBox) > right(replyBox), 'customer: own message right of the agent reply');
    const [agentMine, agentTheirs] = [
      await panel.getByTestId('message').filter({ hasText: 'Sure, order number?' }).boundingBox(),
      await received.boundingBox(),
    ];
    assert.ok(agentMine.x > agentTheirs.x && right(agentMine) > right(agentTheirs), 'agent: own message right of the customer message');

    // Over-long messages are refused before sending, with the limit shown.
    await customer.getByTestId('message-input').fill('x'.repeat(2001));
    await customer.locator('[data-testid="char-counter"].over').filter({ hasText: 'limit is 2000' }).waitFor();
    assert.equal(await customer.getByTestId('send-button').isDisabled(), true);
    await customer.getByTestId('message-input').fill('');
    await shot(customer, 'customer-chat');

    await panel.getByTestId('end-chat').click();
    await customer.getByTestId('chat-ended').filter({ hasText: 'Alice ended the chat' }).waitFor();
    await panel.getByTestId('chat-ended').waitFor();
    await customer.getByTestId('new-chat-button').waitFor();
  });
});

test('an agent holds two chats at once and nothing crosses', async () => {
  await withShots('two-chats', async (pages) => {
    const bob = await createAgent(hub, { username: 'bob', display_name: 'Bob', categories: ['general', 'billing'], max_chats: 2 });
    const [agent, dan, eve] = await openPages(browser, pages, 3);
    await agentSignsIn(agent, hub, bob);
    await agent.getByTestId('chat-load').filter({ hasText: '0 of 2' }).waitFor();

    await customerJoins(dan, hub, 'general', 'Dan');
    await panelOf(agent, 'Dan').waitFor();

    // The agent is typing to Dan when Eve arrives: focus and text stay where they were.
    const danInput = panelOf(agent, 'Dan').getByTestId('message-input');
    await danInput.click();
    await danInput.pressSequentially('Half a sent', { delay: 10 });
    await customerJoins(eve, hub, 'billing', 'Eve');
    // Eve joins the list; Dan's chat stays open.
    await itemOf(agent, 'Eve').waitFor();
    assert.equal(await panelOf(agent, 'Eve').isVisible(), false);
    await agent.waitForFunction(() => document.title.includes('New chat: Eve') || document.title === 'Switchboard — Agent');
    const focused = await agent.evaluate(() => document.activeElement?.closest('[data-testid="chat-panel"]')?.dataset.customer);
    assert.equal(focused, 'Dan', 'focus stays in the panel being typed in');
    assert.equal(await danInput.inputValue(), 'Half a sent');
    await danInput.pressSequentially('ence for Dan', { delay: 10 });
    await danInput.press('Enter');
    await agent.getByTestId('chat-load').filter({ hasText: '2 of 2' }).waitFor();

    await sendMessage(dan, 'I am Dan');
    await sendMessage(eve, 'I am Eve');
    await itemOf(agent, 'Eve').click();
    await panelOf(agent, 'Eve').getByTestId('message-input').fill('Hello Eve');
    await panelOf(agent, 'Eve').getByTestId('message-input').press('Enter');

    await panelOf(agent, 'Dan').getByTestId('message').filter({ hasText: 'I am Dan' }).waitFor({ state: 'attached' });
    await panelOf(agent, 'Eve').getByTestId('message').filter({ hasText: 'I am Eve' }).waitFor();
    await dan.getByTestId('message').filter({ hasText: 'Half a sentence for Dan' }).waitFor();
    await eve.getByTestId('message').filter({ hasText: 'Hello Eve' }).waitFor();
    await agent.waitForTimeout(300);

    const texts = async (loc) => (await loc.getByTestId('message').allTextContents()).join(' | ');
    const danPanel = await texts(panelOf(agent, 'Dan'));
    const evePanel = await texts(panelOf(agent, 'Eve'));
    assert.ok(!/Eve/.test(danPanel), `Dan's panel has nothing of Eve: ${danPanel}`);
    assert.ok(!/Dan/.test(evePanel), `Eve's panel has nothing of Dan: ${evePanel}`);
    assert.ok(!/Eve/.test(await texts(dan)), 'Dan sees nothing for Eve');
    assert.ok(!/Dan/.test(await texts(eve)), 'Eve sees nothing for Dan');
    await shot(agent, 'agent-two-chats');

    // Ending one chat leaves the other working.
    await itemOf(agent, 'Dan').click();
    await panelOf(agent, 'Dan').getByTestId('end-chat').click();
    await dan.getByTestId('chat-ended').waitFor();
    await sendMessage(eve, 'Still here');
    await panelOf(agent, 'Eve').getByTestId('message').filter({ hasText: 'Still here' }).waitFor({ state: 'attached' });
    await itemOf(agent, 'Eve').getByTestId('unread-count').filter({ hasText: '1' }).waitFor();
    await agent.getByTestId('chat-load').filter({ hasText: '1 of 2' }).waitFor();
  });
});

test('a customer reloads mid-chat and gets the chat back with its messages', async () => {
  await withShots('reload', async (pages) => {
    const { agent, customer } = await agentAndCustomerPages(browser, hub, pages, { username: 'cara', display_name: 'Cara', categories: ['technical'] });
    const panel = await joinedChat(customer, agent, hub, 'technical', 'Finn');
    await sendMessage(customer, 'My router blinks');
    await says(panel, customer, 'Which colour?');

    await customer.reload();
    await customer.getByTestId('session-title').filter({ hasText: 'Chatting with Cara' }).waitFor();
    await customer.getByTestId('message').filter({ hasText: 'My router blinks' }).waitFor();
    await customer.getByTestId('message').filter({ hasText: 'Which colour?' }).waitFor();
    assert.equal(await customer.getByTestId('message').count(), 2, 'each message once');

    // Away for a moment (same tab, so sessionStorage stays): the agent's message sent meanwhile arrives on resume.
    await customer.goto('about:blank');
    await panel.getByTestId('customer-status').filter({ hasText: 'disconnected' }).waitFor();
    await sendMessage(panel, 'Are you still there?');
    await customer.goto(`${hub.url}/`);
    await customer.getByTestId('message').filter({ hasText: 'Are you still there?' }).waitFor();
    assert.equal(await customer.getByTestId('message').count(), 3, 'the missed message once, after the two kept ones');
    await panel.getByTestId('peer-back').last().waitFor();

    await says(customer, panel, 'Orange, blinking');
    assert.equal(await panel.getByTestId('message').count(), 4);
  });
});

test('the customer is told the agent sees their typing, links open safely, a background reply flashes the title, and ending asks first', async () => {
  await withShots('chat-customer-cues', async (pages) => {
    const { agent, customer } = await agentAndCustomerPages(browser, hub, pages, { username: 'dora', display_name: 'Dora', categories: ['sales'] }, { available: true });
    await customerJoins(customer, hub, 'sales', 'Eve');
    await customer.getByTestId('session-title').filter({ hasText: 'Chatting with Dora' }).waitFor();

    // DRAFT_PREVIEW is on by default: the customer is told, beside the composer.
    await customer.getByTestId('composer-hint').filter({ hasText: 'can see what you type' }).waitFor();

    // A link from the agent is clickable, opens in a new tab, and gets no handle on the page.
    const panel = panelOf(agent, 'Eve');
    await panel.waitFor();
    await panel.getByTestId('message-input').fill('See https://example.com/help. Thanks');
    await panel.getByTestId('send-button').click();
    const link = customer.getByTestId('message').filter({ hasText: 'See https://example.com/help' }).locator('a');
    await link.waitFor();
    assert.equal(await link.getAttribute('href'), 'https://example.com/help');
    assert.equal(await link.getAttribute('target'), '_blank');
    assert.match(await link.getAttribute('rel'), /noopener/);
    assert.equal(await link.textContent(), 'https://example.com/help', 'the full stop is not part of the address');
    // Each message names its author beside its time.
    assert.equal(await customer.getByTestId('message').filter({ hasText: 'See https://example.com/help' }).getByTestId('message-author').textContent(), 'Dora');

    // A reply while the customer's tab is in the background changes its title. (Headless
    // Chromium keeps every page visible, so the page is told it is hidden.)
    await customer.evaluate(() => Object.defineProperty(document, 'hidden', { configurable: true, get: () => true }));
    await panel.getByTestId('message-input').fill('Are you still there?');
    await panel.getByTestId('send-button').click();
    await customer.waitForFunction(() => document.title.includes('New reply from Dora'));

    // "End chat" asks first; "Keep chatting" keeps it.
    await customer.getByTestId('leave-button').click();
    await customer.getByTestId('confirm-end').waitFor();
    await shot(customer, 'customer-confirm-end');
    await customer.getByTestId('keep-chatting-button').click();
    await customer.getByTestId('confirm-end').waitFor({ state: 'hidden' });
    assert.equal(await customer.getByTestId('message-input').isDisabled(), false, 'still chatting');
    await customer.getByTestId('leave-button').click();
    await customer.getByTestId('confirm-end-button').click();
    await customer.getByTestId('session-title').filter({ hasText: 'Chat ended' }).waitFor();
    await customer.getByTestId('new-chat-button').waitFor();
  });
});
