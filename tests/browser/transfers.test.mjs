// Transfers: an agent hands a running chat to another agent or to a topic's queue from
// the console's Transfer dialog. The agent who gets it sees the transcript so far and the
// note; the customer is told who they chat with now (or waits in the new topic's line
// with the transcript kept, and goes on in the same chat with the next agent).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createAgent, agentSignsIn, customerJoins, shot, withShots, hubAndBrowser, startForFile, openPages, panelOf, joinedChat, says, waitMs } from './helpers.mjs';

let hub, browser;
startForFile(() => hubAndBrowser(), (started) => ({ hub, browser } = started));

const DESKTOP = { width: 1280, height: 860 };
const PHONE = { width: 390, height: 844 };

/** What is on the screen (a modal dialog over the page), not the whole scrolled page. */
const screenShot = (page, name) => shot(page, name, { fullPage: false });

const itemOf = (page, customer) => page.locator(`[data-testid="chat-list-item"][data-customer="${customer}"]`);
const agentOption = (page, name) => page.getByTestId('transfer-dialog').locator(`[data-testid="transfer-agent"][data-name="${name}"]`);
const categoryOption = (page, name) => page.getByTestId('transfer-dialog').locator(`[data-testid="transfer-category"][data-name="${name}"]`);

test('a chat transferred to another agent, with a note: the transcript goes along and the customer chats on with them', async () => {
  await withShots('transfer-agent', async (pages) => {
    const annAccount = await createAgent(hub, { username: 'ann', display_name: 'Ann', categories: ['billing'], max_chats: 2 });
    const bobAccount = await createAgent(hub, { username: 'bob', display_name: 'Bob', categories: ['billing'], max_chats: 3 });
    const cleoAccount = await createAgent(hub, { username: 'cleo', display_name: 'Cleo', categories: ['billing'] });
    const [ann, bob, cleo, customer] = await openPages(browser, pages, [DESKTOP, DESKTOP, DESKTOP, DESKTOP]);

    // Only Ann is available when Carla comes; Bob and Cleo sign in away.
    await agentSignsIn(ann, hub, annAccount);
    await agentSignsIn(bob, hub, bobAccount, { available: false });
    await agentSignsIn(cleo, hub, cleoAccount, { available: false });
    await customerJoins(customer, hub, 'billing', 'Carla');
    await customer.getByTestId('session-title').filter({ hasText: 'Chatting with Ann' }).waitFor();
    const annPanel = panelOf(ann, 'Carla');
    await annPanel.waitFor();
    await says(customer, annPanel, 'My invoice is wrong');
    await says(annPanel, customer, 'Let me look — one moment.');
    // Bob can take chats now; Cleo stays away.
    await bob.getByTestId('availability-toggle').click();
    await bob.locator('[data-testid="availability-toggle"][data-available="true"]').waitFor();

    // The Transfer dialog: who can take it, and where.
    const open = annPanel.getByTestId('transfer-button');
    await open.click();
    const dialog = ann.getByTestId('transfer-dialog');
    await dialog.waitFor();
    assert.equal(await dialog.evaluate((d) => d.open && d.matches(':modal')), true, 'a modal dialog');
    assert.equal(await dialog.getByTestId('transfer-customer').textContent(), 'Carla');
    await agentOption(ann, 'Bob').waitFor();
    assert.equal(await agentOption(ann, 'Bob').locator('input').isEnabled(), true);
    assert.match(await agentOption(ann, 'Bob').textContent(), /available.*0 of 3 chats/);
    assert.match(await agentOption(ann, 'Cleo').textContent(), /0 of 1 chat(?!s)/);
    // Cleo is listed but cannot take it: disabled, with the reason.
    assert.equal(await agentOption(ann, 'Cleo').locator('input').isDisabled(), true);
    assert.match(await agentOption(ann, 'Cleo').getByTestId('transfer-reason').textContent(), /away/);
    // Ann does not list herself; every topic is there, with its waiting count.
    assert.equal(await agentOption(ann, 'Ann').count(), 0);
    assert.match(await categoryOption(ann, 'Technical support').textContent(), /0 waiting/);
    assert.match(await categoryOption(ann, 'Technical support').getByTestId('transfer-hint').textContent(), /Nobody online/);
    assert.equal(await dialog.getByTestId('transfer-submit').isDisabled(), true, 'nothing chosen yet');
    assert.equal(await dialog.getByTestId('transfer-note').getAttribute('maxlength'), '1000');
    // Focus is in the dialog; Escape closes it and gives focus back to the button.
    assert.equal(await ann.evaluate(() => !!document.activeElement?.closest('[data-testid="transfer-dialog"]')), true);
    await ann.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    assert.equal(await ann.evaluate(() => document.activeElement?.dataset.testid), 'transfer-button');

    // Closed and opened again at once, a few times (the dialog's close event comes as a
    // task of its own, after the new opening: it must not undo it): the lists come each time.
    for (let i = 0; i < 5; i += 1) {
      await ann.keyboard.press('Enter');
      await agentOption(ann, 'Bob').waitFor({ timeout: waitMs(5000) });
      await ann.keyboard.press('Escape');
    }
    await dialog.waitFor({ state: 'hidden' });

    // Again, by keyboard: Enter opens it; choose Bob, write a note (text, never markup).
    await ann.keyboard.press('Enter');
    await agentOption(ann, 'Bob').waitFor();
    await agentOption(ann, 'Bob').click();
    const note = 'VIP <b>customer</b> — refund approved\nplease confirm the amount';
    await dialog.getByTestId('transfer-note').fill(note);
    assert.match(await dialog.getByTestId('transfer-note-count').textContent(), /^\d+ \/ 1000$/);
    assert.equal((await dialog.getByTestId('transfer-submit').textContent()).trim(), 'Transfer to Bob');
    await screenShot(ann, 'transfer-dialog-desktop');
    await dialog.getByTestId('transfer-submit').click();

    // Ann: the chat is over for her, saying where it went.
    await dialog.waitFor({ state: 'hidden' });
    await annPanel.getByTestId('chat-ended').filter({ hasText: 'Transferred to Bob' }).waitFor();
    await itemOf(ann, 'Carla').getByTestId('chat-item-waiting').filter({ hasText: 'Transferred to Bob' }).waitFor();
    assert.equal(await annPanel.getByTestId('message-input').isDisabled(), true);
    assert.equal(await annPanel.getByTestId('transfer-button').isHidden(), true);
    assert.equal(await ann.getByTestId('chat-load').textContent(), '0 of 2 chats');
    assert.equal(await ann.evaluate(() => document.activeElement?.dataset.testid), 'close-panel', 'focus lands on the chat\'s Close button');

    // Bob: the chat with what was said, and the note on top.
    const bobPanel = panelOf(bob, 'Carla');
    await bobPanel.waitFor();
    await bobPanel.getByTestId('message').filter({ hasText: 'My invoice is wrong' }).waitFor();
    const earlier = bobPanel.getByTestId('message').filter({ hasText: 'Let me look — one moment.' });
    await earlier.waitFor();
    // Ann's line is an agent line, not Bob's own, and says it is hers.
    assert.equal(await earlier.getAttribute('data-mine'), 'false');
    assert.match(await earlier.getAttribute('class'), /\bmine\b/);
    assert.equal(await earlier.getByTestId('message-author').textContent(), 'Ann');
    const block = bobPanel.getByTestId('transfer-note');
    await block.waitFor();
    assert.equal(await block.getByTestId('transfer-from').textContent(), 'Transferred by Ann');
    assert.equal(await block.getByTestId('transfer-note-text').textContent(), note.trim());
    assert.equal(await block.locator('b').count(), 0, 'the note is text, not markup');
    await bobPanel.getByTestId('chat-transferred').filter({ hasText: 'Ann transferred this chat to you' }).waitFor();
    // Each line once.
    assert.equal(await bobPanel.getByTestId('message').count(), 2);
    assert.equal(await itemOf(bob, 'Carla').getByTestId('chat-item-preview').textContent(), 'Ann: Let me look — one moment.');

    // The customer: told, with the header's name changed and the transcript kept.
    await customer.getByTestId('transferred').filter({ hasText: "You're now chatting with Bob" }).waitFor();
    await customer.getByTestId('session-title').filter({ hasText: 'Chatting with Bob' }).waitFor();
    assert.equal(await customer.getByTestId('message').count(), 2);
    assert.equal(await customer.getByTestId('message').filter({ hasText: 'Let me look' }).getByTestId('message-author').textContent(), 'Ann');
    await says(customer, bobPanel, 'Thanks, Bob!');
    await says(bobPanel, customer, 'Refund confirmed.');
    assert.equal(await customer.getByTestId('message').filter({ hasText: 'Refund confirmed.' }).getByTestId('message-author').textContent(), 'Bob');
    const bobLine = bobPanel.getByTestId('message').filter({ hasText: 'Refund confirmed.' });
    assert.equal(await bobLine.getAttribute('data-mine'), 'true');
    // Nothing reached Ann after the transfer.
    assert.equal(await annPanel.getByTestId('message').filter({ hasText: 'Thanks, Bob!' }).count(), 0);
    await shot(customer, 'transfer-customer-desktop');
    await screenShot(bob, 'transfer-received-desktop');

    // A reload keeps it all: Bob's note and earlier lines, the customer's names on lines.
    await bob.reload();
    await bobPanel.getByTestId('transfer-note').waitFor();
    assert.equal(await bobPanel.getByTestId('message').filter({ hasText: 'Let me look' }).getByTestId('message-author').textContent(), 'Ann');
    await customer.reload();
    await customer.getByTestId('session-title').filter({ hasText: 'Chatting with Bob' }).waitFor();
    await customer.getByTestId('message').filter({ hasText: 'Refund confirmed.' }).waitFor();
    assert.equal(await customer.getByTestId('message').filter({ hasText: 'Let me look' }).getByTestId('message-author').textContent(), 'Ann');
  });
});

test('a refused transfer is explained in the dialog and the chat stays', async () => {
  await withShots('transfer-refused', async (pages) => {
    const dan = await createAgent(hub, { username: 'dan', display_name: 'Dan', categories: ['sales'], max_chats: 2 });
    const fay = await createAgent(hub, { username: 'fay', display_name: 'Fay', categories: ['sales'], max_chats: 2 });
    const [agent, other, customer] = await openPages(browser, pages, [DESKTOP, DESKTOP, DESKTOP]);
    await agentSignsIn(agent, hub, dan);
    await agentSignsIn(other, hub, fay, { available: false });
    const panel = await joinedChat(customer, agent, hub, 'sales', 'Gus');
    await other.getByTestId('availability-toggle').click();
    await other.locator('[data-testid="availability-toggle"][data-available="true"]').waitFor();
    await panel.getByTestId('transfer-button').click();
    await agentOption(agent, 'Fay').locator('input:enabled').waitFor();
    await agentOption(agent, 'Fay').click();
    // Fay goes away before Dan presses Transfer: the hub refuses.
    await other.getByTestId('availability-toggle').click();
    await other.locator('[data-testid="availability-toggle"][data-available="false"]').waitFor();
    await agent.getByTestId('transfer-submit').click();
    await agent.getByTestId('transfer-error').filter({ hasText: 'cannot take this chat right now' }).waitFor();
    assert.match(await agent.getByTestId('transfer-error').textContent(), /The chat stays with you/);
    // The list is asked for again: Fay now shows away.
    await agentOption(agent, 'Fay').getByTestId('transfer-reason').filter({ hasText: 'away' }).waitFor();
    await agent.getByTestId('transfer-cancel').click();
    await agent.getByTestId('transfer-dialog').waitFor({ state: 'hidden' });
    assert.equal(await agent.evaluate(() => document.activeElement?.dataset.testid), 'transfer-button');
    // Still Dan's chat.
    await says(panel, customer, 'Still here.');
    assert.equal(await panel.getByTestId('message-input').isEnabled(), true);
  });
});

test('a chat transferred to a topic with nobody online: the customer waits with the transcript, then chats on with the next agent', async () => {
  await withShots('transfer-category', async (pages) => {
    const hal = await createAgent(hub, { username: 'hal', display_name: 'Hal', categories: ['general'] });
    const ivy = await createAgent(hub, { username: 'ivy', display_name: 'Ivy', categories: ['technical'] });
    const [agent, customer] = await openPages(browser, pages, [DESKTOP, DESKTOP]);
    await agentSignsIn(agent, hub, hal);
    const panel = await joinedChat(customer, agent, hub, 'general', 'Jo');
    await says(customer, panel, 'My router blinks red');
    await says(panel, customer, 'That is one for our technicians.');

    await panel.getByTestId('transfer-button').click();
    const tech = categoryOption(agent, 'Technical support');
    await tech.waitFor();
    assert.match(await tech.getByTestId('transfer-hint').textContent(), /Nobody online/);
    await tech.click();
    await agent.getByTestId('transfer-note').fill('Router model X200, already restarted.');
    await agent.getByTestId('transfer-submit').click();
    await panel.getByTestId('chat-ended').filter({ hasText: 'Transferred to Technical support' }).waitFor();

    // The customer: a line saying so, the place in the new line, the transcript kept, no writing meanwhile.
    await customer.getByTestId('transferred').filter({ hasText: "You've been transferred to Technical support. Please wait for the next agent." }).waitFor();
    await customer.getByTestId('waiting').waitFor();
    await customer.getByTestId('place').filter({ hasText: '1' }).waitFor();
    await customer.getByTestId('session-title').filter({ hasText: 'Waiting for the next agent' }).waitFor();
    assert.equal(await customer.getByTestId('message-input').isDisabled(), true);
    assert.equal(await customer.getByTestId('message').count(), 2);
    // Nobody there now: said in a few words, the message form folded away (the transcript stays in view).
    await customer.getByTestId('offline-title').filter({ hasText: 'Nobody is online in Technical support right now' }).waitFor();
    assert.equal(await customer.getByTestId('offline-form').isVisible(), false);
    assert.ok(await customer.getByTestId('transcript').evaluate((t) => t.getBoundingClientRect().top < innerHeight), 'the transcript is in view');
    await shot(customer, 'transfer-customer-waiting');

    // A reload while waiting keeps the transcript and the place.
    await customer.reload();
    await customer.getByTestId('place').filter({ hasText: '1' }).waitFor();
    await customer.getByTestId('message').filter({ hasText: 'That is one for our technicians.' }).waitFor();
    assert.equal(await customer.getByTestId('message-input').isDisabled(), true);
    assert.equal(await customer.getByTestId('session-title').textContent(), 'Waiting for the next agent');
    // The transfer's line is still there, after the lines it followed.
    await customer.getByTestId('transferred').filter({ hasText: "You've been transferred to Technical support." }).waitFor();
    assert.equal(await customer.getByTestId('transcript').evaluate((t) => t.lastElementChild.dataset.testid), 'transferred');

    // Ivy comes online in Technical support: the same chat goes on with her.
    const [next] = await openPages(browser, pages, [DESKTOP]);
    await agentSignsIn(next, hub, ivy);
    const ivyPanel = panelOf(next, 'Jo');
    await ivyPanel.waitFor();
    await customer.getByTestId('transfer-joined').filter({ hasText: "You're now chatting with Ivy" }).waitFor();
    await customer.getByTestId('session-title').filter({ hasText: 'Chatting with Ivy' }).waitFor();
    assert.equal(await customer.getByTestId('message').filter({ hasText: 'My router blinks red' }).count(), 1);
    assert.equal(await customer.getByTestId('message').filter({ hasText: 'That is one for our technicians.' }).count(), 1);
    await customer.getByTestId('message-input').waitFor({ state: 'visible' });
    assert.equal(await customer.getByTestId('message-input').isEnabled(), true);
    // Ivy has the transcript and the note, by way of the queue.
    await ivyPanel.getByTestId('message').filter({ hasText: 'My router blinks red' }).waitFor();
    await ivyPanel.getByTestId('message').filter({ hasText: 'That is one for our technicians.' }).waitFor();
    assert.match(await ivyPanel.getByTestId('transfer-note').textContent(), /Transferred by Hal.*Technical support.*Router model X200/s);
    // The chat is Technical support's now (it came through that queue).
    assert.equal(await ivyPanel.locator('header .pill').first().textContent(), 'Technical support');
    await says(customer, ivyPanel, 'Hello Ivy');
    await says(ivyPanel, customer, 'Hi Jo, let us fix it.');
    // Every line once, on both sides.
    assert.equal(await customer.getByTestId('message').count(), 4);
    assert.equal(await ivyPanel.getByTestId('message').count(), 4);
    await shot(customer, 'transfer-customer-continued');
    await shot(next, 'transfer-received-via-queue');

    // Back to General, where Hal (who handed it on) is the only one online: it comes back
    // to him as a running chat again, in place of the ended one he still listed.
    await ivyPanel.getByTestId('transfer-button').click();
    await categoryOption(next, 'General').click();
    await next.getByTestId('transfer-submit').click();
    await ivyPanel.getByTestId('chat-ended').filter({ hasText: 'Transferred to General' }).waitFor();
    await panel.getByTestId('transfer-note').filter({ hasText: 'Transferred by Ivy' }).waitFor();
    assert.equal(await panelOf(agent, 'Jo').count(), 1, 'one panel for the chat');
    assert.equal(await itemOf(agent, 'Jo').count(), 1, 'one list item for the chat');
    assert.equal(await panel.getByTestId('message-input').isEnabled(), true);
    assert.equal(await panel.getByTestId('message').count(), 4);
    await customer.getByTestId('session-title').filter({ hasText: 'Chatting with Hal' }).waitFor();
    await says(panel, customer, 'Hal again — all fixed?');
  });
});

test('the transfer dialog fits a phone and works there; the chat widget tells its customer', async () => {
  await withShots('transfer-phone', async (pages) => {
    const kim = await createAgent(hub, { username: 'kim', display_name: 'Kim', categories: ['general'], max_chats: 2 });
    const lou = await createAgent(hub, { username: 'lou', display_name: 'Lou with a rather long display name', categories: ['general'] });
    const [agent, helper, customer] = await openPages(browser, pages, [PHONE, DESKTOP, PHONE]);
    await agentSignsIn(agent, hub, kim);
    // The customer chats in the widget (the same customer code as the page).
    await customer.goto(`${hub.url}/widget.html`);
    await customer.getByTestId('category-general').click();
    await customer.getByTestId('name-input').fill('Max');
    await customer.getByTestId('join-button').click();
    await customer.getByTestId('session-title').filter({ hasText: 'Chatting with Kim' }).waitFor();
    await agentSignsIn(helper, hub, lou);
    // The first chat opens by itself (on a phone the conversation takes the screen).
    const panel = panelOf(agent, 'Max');
    await panel.getByTestId('transfer-button').waitFor();
    await panel.getByTestId('transfer-button').click();
    const dialog = agent.getByTestId('transfer-dialog');
    await agentOption(agent, 'Lou with a rather long display name').waitFor();
    const box = await dialog.boundingBox();
    assert.ok(box.x >= 0 && box.x + box.width <= PHONE.width && box.y >= 0 && box.y + box.height <= PHONE.height, `the dialog fits the screen: ${JSON.stringify(box)}`);
    assert.ok(await agent.evaluate(() => document.documentElement.scrollWidth) <= PHONE.width, 'no sideways scrolling');
    // Both actions are on screen without scrolling, big enough to tap.
    for (const id of ['transfer-submit', 'transfer-cancel']) {
      const b = await dialog.getByTestId(id).boundingBox();
      assert.ok(b && b.x >= 0 && b.x + b.width <= PHONE.width && b.y + b.height <= PHONE.height && b.height >= 32, `${id} on screen: ${JSON.stringify(b)}`);
    }
    await agentOption(agent, 'Lou with a rather long display name').click();
    await dialog.getByTestId('transfer-note').fill('Asked about delivery times.');
    await screenShot(agent, 'transfer-dialog-phone');
    await dialog.getByTestId('transfer-submit').click();
    await panel.getByTestId('chat-ended').filter({ hasText: 'Transferred to Lou with a rather long display name' }).waitFor();
    await panelOf(helper, 'Max').getByTestId('transfer-note').waitFor();
    await customer.getByTestId('transferred').filter({ hasText: "You're now chatting with Lou with a rather long display name" }).waitFor();
    await customer.getByTestId('session-title').filter({ hasText: 'Chatting with Lou with a rather long display name' }).waitFor();
    assert.ok(await customer.evaluate(() => document.documentElement.scrollWidth) <= PHONE.width, 'widget: no sideways scrolling');
    await shot(customer, 'transfer-widget-phone');
  });
});

test('a chat goes to any colleague free to take it: in its own topic, or moved into theirs', async () => {
  await withShots('transfer-any-colleague', async (pages) => {
    const gilAccount = await createAgent(hub, { username: 'gil', display_name: 'Gil', categories: ['general'] });
    const niaAccount = await createAgent(hub, { username: 'nia', display_name: 'Nia', categories: ['billing'], max_chats: 2 });
    const oriAccount = await createAgent(hub, { username: 'ori', display_name: 'Ori', categories: ['sales', 'technical'], max_chats: 2 });
    const [gil, nia, ori, customer] = await openPages(browser, pages, [DESKTOP, DESKTOP, DESKTOP, DESKTOP]);
    await agentSignsIn(gil, hub, gilAccount);
    await customerJoins(customer, hub, 'general', 'Kit');
    await customer.getByTestId('session-title').filter({ hasText: 'Chatting with Gil' }).waitFor();
    await agentSignsIn(nia, hub, niaAccount);
    await agentSignsIn(ori, hub, oriAccount);
    const gilPanel = panelOf(gil, 'Kit');
    await gilPanel.waitFor();
    await says(customer, gilPanel, 'My parcel never came');
    await says(gilPanel, customer, 'Gil here, let me look.');

    // Nia holds Billing only, not the chat's General: she can take it all the same.
    await gilPanel.getByTestId('transfer-button').click();
    const dialog = gil.getByTestId('transfer-dialog');
    await agentOption(gil, 'Nia').locator('input:enabled').waitFor();
    assert.match(await agentOption(gil, 'Nia').textContent(), /Billing/);
    await agentOption(gil, 'Nia').click();
    // Where the chat goes on: its own topic unless Gil moves it into one of Nia's.
    const topics = dialog.getByTestId('transfer-topics');
    await topics.waitFor();
    const topicChoice = (name) => topics.locator(`[data-testid="transfer-topic"][data-name="${name}"] input`);
    assert.equal(await topicChoice('General').isChecked(), true, 'kept in its topic unless moved');
    assert.equal(await topicChoice('Billing').isChecked(), false);
    await screenShot(gil, 'transfer-dialog-topic-desktop');
    await dialog.getByTestId('transfer-submit').click();
    await gilPanel.getByTestId('chat-ended').filter({ hasText: 'Transferred to Nia' }).waitFor();
    const niaPanel = panelOf(nia, 'Kit');
    await niaPanel.waitFor();
    assert.equal(await niaPanel.getByTestId('panel-category').textContent(), 'General');
    await niaPanel.getByTestId('message').filter({ hasText: 'Gil here' }).getByTestId('message-author').filter({ hasText: /^Gil$/ }).waitFor();
    await says(niaPanel, customer, 'Nia from billing: not a billing matter.');

    // Nia hands it to Ori, moving it into Technical support (one of Ori's).
    await niaPanel.getByTestId('transfer-button').click();
    const niaDialog = nia.getByTestId('transfer-dialog');
    await agentOption(nia, 'Ori').locator('input:enabled').waitFor();
    await agentOption(nia, 'Ori').click();
    const niaTopics = niaDialog.getByTestId('transfer-topics');
    await niaTopics.waitFor();
    const names = await niaTopics.locator('[data-testid="transfer-topic"]').evaluateAll((ls) => ls.map((l) => l.dataset.name));
    assert.deepEqual(names, ['General', 'Sales', 'Technical support'], 'its own topic, then each of Ori\'s');
    await niaTopics.locator('[data-testid="transfer-topic"][data-name="Technical support"]').click();
    assert.match(await niaDialog.getByTestId('transfer-submit').textContent(), /Ori/);
    await niaDialog.getByTestId('transfer-note').fill('Courier problem, needs tracking.');
    await niaDialog.getByTestId('transfer-submit').click();
    await niaPanel.getByTestId('chat-ended').filter({ hasText: 'Transferred to Ori' }).waitFor();

    // Ori: the chat, now in Technical support, each earlier agent's line under their name.
    const oriPanel = panelOf(ori, 'Kit');
    await oriPanel.waitFor();
    assert.equal(await oriPanel.getByTestId('panel-category').textContent(), 'Technical support');
    const author = (text) => oriPanel.getByTestId('message').filter({ hasText: text }).getByTestId('message-author');
    await author('Gil here').waitFor();
    assert.equal(await author('Gil here').textContent(), 'Gil');
    assert.equal(await author('Nia from billing').textContent(), 'Nia');
    assert.equal(await oriPanel.getByTestId('transfer-from').textContent(), 'Transferred by Nia');
    await customer.getByTestId('session-title').filter({ hasText: 'Chatting with Ori' }).waitFor();
    await says(oriPanel, customer, 'Ori: tracking it now.');
    assert.equal(await author('Ori: tracking').count(), 0, 'his own line has no other author');
    await screenShot(ori, 'transfer-received-moved-desktop');
  });
});
