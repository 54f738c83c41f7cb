// A returning customer continues their conversation: they chat, it ends, and later (a new
// tab of the same browser, so the same visitor key and no session left) the customer page
// lists it under the topics with its status and last line; "Continue" opens it again with
// its lines, with the same agent, and the chat goes on. The page passes axe with the list
// shown, on a phone and a desk.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newPage, createAgent, agentSignsIn, withShots, shot, hubAndBrowser, startForFile, says, joinedChat, panelOf, expectClean, endsChat, comesBack, waitMs } from './helpers.mjs';

let hub, browser;

const PHONE = { width: 390, height: 844 };
const DESK = { width: 1366, height: 768 };

/**
 * Agent `username` (Vera, in General, taking `max_chats`) signed in on a desk page,
 * and customer `name` on a page of `size` who joined General and was given to them: the
 * agent's account, both pages (kept in `pages`) and the agent's panel of the chat.
 * `agentPage` and `customerPage` are more options of each page (`bypassCSP` where axe runs).
 */
async function inChat(pages, { username, max_chats = 2, name, size = PHONE, agentPage: agentOptions = {}, customerPage: customerOptions = {} }) {
  const agent = await createAgent(hub, { username, display_name: 'Vera', categories: ['general'], max_chats });
  const agentPage = await newPage(browser, DESK, agentOptions);
  pages.push(agentPage);
  await agentSignsIn(agentPage, hub, agent);
  const customer = await newPage(browser, size, customerOptions);
  pages.push(customer);
  const panel = await joinedChat(customer, agentPage, hub, 'general', name);
  return { agent, agentPage, customer, panel };
}

/** The customer says `text` and closes the page; past the grace period their chat ends and the
 *  conversation stays open in the agent's list (its panel says so). The customer's browser
 *  context, to come back in. */
async function saysAndLeaves(customer, panel, text) {
  await says(customer, panel, text);
  const context = customer.context();
  await customer.close();
  await panel.getByTestId('chat-ended').filter({ hasText: 'stays open in your list' }).waitFor({ timeout: waitMs(15000) });
  return context;
}

/**
 * `name` chats with Vera ("My parcel never came" / "I will look into it") and ends the chat;
 * Vera closes her page (nobody is online); `name` comes back in a new tab of the same browser
 * and continues the conversation, waiting in line in it. Vera's account and that tab.
 */
async function backWhileNobodyOnline(pages, { username, name, size }) {
  const { agent, agentPage, customer, panel } = await inChat(pages, { username, max_chats: 1, name, size, customerPage: { bypassCSP: true } });
  await says(customer, panel, 'My parcel never came');
  await says(panel, customer, 'I will look into it');
  await endsChat(customer);
  // Vera goes home: nobody is online.
  await agentPage.close();
  const { later, row } = await comesBack(hub, pages, customer.context());
  await row.getByTestId('continue-conversation').click();
  await later.getByTestId('waiting-in-conversation').waitFor();
  return { agent, later };
}

/** An agent who closed their page signs in again on a new desk page (kept in `pages`; returned):
 *  their account may come back available as they left it (a waiting customer is then theirs at
 *  once), so they go available only if they are not (a click then would make them away). */
async function signsInAgain(pages, agent) {
  const page = await newPage(browser, DESK);
  pages.push(page);
  await agentSignsIn(page, hub, agent, { available: false });
  const toggle = page.getByTestId('availability-toggle');
  if (await toggle.getAttribute('data-available') !== 'true') await toggle.click();
  return page;
}
// A short grace period: a customer who closed the page is gone after 2 s, not 30.
startForFile(() => hubAndBrowser({ RESUME_GRACE_SECS: '2' }), (started) => ({ hub, browser } = started));

for (const [label, size] of [['phone', PHONE], ['desk', { width: 1280, height: 800 }]]) {
  test(`a customer comes back and continues their conversation with the same agent (${label})`, () => withShots(`continuing-${label}`, async (pages) => {
    const name = `Nora ${label}`;
    const { agentPage, customer, panel } = await inChat(pages, { username: `vera-${label}`, name, size, agentPage: { bypassCSP: true }, customerPage: { bypassCSP: true } });
    await says(customer, panel, 'My order 1042 is late');
    await says(panel, customer, 'It ships today');
    // She ends it, which says she can come back to it.
    await customer.getByTestId('leave-button').click();
    assert.match(await customer.locator('#confirm-end-question').textContent(), /come back to it later/);
    await customer.getByTestId('confirm-end-button').click();
    await customer.getByTestId('rating').waitFor();

    // Later, a new tab of the same browser: the conversation is listed under the topics.
    const { later, row } = await comesBack(hub, pages, customer.context());
    assert.equal(await row.getAttribute('data-status'), 'resolved');
    assert.match(await row.innerText(), /General[\s\S]*Resolved[\s\S]*Vera: It ships today/);
    const width = await later.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= size.width, `fits (scrollWidth ${width})`);
    await expectClean(later, "the returning customer's page");
    await shot(later, `continuing-list-${label}`);

    // Continue: her lines are back, the same agent has it, and the chat goes on.
    await row.getByTestId('continue-conversation').click();
    await later.getByTestId('conversation-continued').waitFor();
    await later.getByTestId('message').filter({ hasText: 'My order 1042 is late' }).waitFor();
    await later.getByTestId('message').filter({ hasText: 'It ships today' }).waitFor();
    const again = panelOf(agentPage, name);
    await again.getByTestId('message').filter({ hasText: 'My order 1042 is late' }).waitFor();
    // Vera is told she came back: after the old lines, "Conversation reopened".
    await again.getByTestId('chat-reopened').filter({ hasText: `Conversation reopened: ${name} came back to it.` }).waitFor();
    // The customer panel lists the conversation's earlier turns (not "No earlier
    // conversations"), readable in place, and how long she waited this time.
    const details = again.getByTestId('customer-details');
    const turns = details.getByTestId('earlier-turns');
    await turns.filter({ hasText: 'Earlier in this conversation, before it was reopened' }).waitFor();
    assert.equal(await details.getByTestId('no-earlier').count(), 0);
    await turns.locator('summary').click();
    await turns.getByTestId('earlier-transcript').filter({ hasText: 'It ships today' }).waitFor();
    assert.match(await details.locator('dt', { hasText: 'Waited' }).textContent(), /^Waited this time$/);
    assert.match(await details.getByTestId('customer-waited').textContent(), /^\d+ s$/);
    await expectClean(agentPage, `the agent console with a reopened conversation (${label})`);
    await says(later, again, 'It has not arrived yet');
    await says(again, later, 'Sorry, I will send another one');
    await shot(later, `continuing-chat-${label}`);
    await shot(agentPage, `continuing-agent-${label}`);
  }));
}

test('a customer closes the page, the agent writes meanwhile, and they see it when they come back', () => withShots('continuing-away', async (pages) => {
  const name = 'Ida away';
  const { agentPage, customer, panel } = await inChat(pages, { username: 'vera-away', name });
  // She closes the page; past the grace period her chat ends, the conversation stays open.
  const context = await saysAndLeaves(customer, panel, 'Can you check my refund?');
  // Open, not ended: the pane and its list row say the customer left.
  assert.equal(await panel.getByTestId('customer-status').textContent(), 'customer left');
  await says(panel, panel, 'Your refund went out today.');
  // Typing into it tells nobody and raises no error.
  assert.equal(await agentPage.getByTestId('page-notice').isVisible(), false, await agentPage.getByTestId('page-notice').textContent());
  await shot(agentPage, 'continuing-away-agent');

  // Later, in the same browser: the conversation is there, open, and Vera's line with it.
  const { later, row } = await comesBack(hub, pages, context);
  assert.equal(await row.getAttribute('data-status'), 'open');
  assert.match(await row.innerText(), /Vera: Your refund went out today\./);
  await row.getByTestId('continue-conversation').click();
  await later.getByTestId('message').filter({ hasText: 'Your refund went out today.' }).waitFor();
  await says(later, panelOf(agentPage, name), 'Thanks, got it');
  // Never resolved: continued, not reopened.
  assert.equal(await panelOf(agentPage, name).getByTestId('chat-reopened').count(), 0);
  await shot(later, 'continuing-away-customer');
}));

test('after a reload the agent opens a conversation whose customer left from the work list and writes into it', () => withShots('continuing-reopened-panel', async (pages) => {
  const name = 'Jon away';
  const { agentPage, customer, panel } = await inChat(pages, { username: 'vera-reload', name });
  const context = await saysAndLeaves(customer, panel, 'Is my order shipped?');

  // The agent reloads: the panel is gone, the conversation is in the work list. "View"
  // shows it from the archive, writable.
  await agentPage.reload();
  await agentPage.getByTestId('connection-state').filter({ hasText: 'online' }).waitFor();
  const row = agentPage.locator(`[data-testid="conversation-item"][data-customer="${name}"]`);
  await row.getByTestId('conversation-open').click();
  const reopened = panelOf(agentPage, name);
  await reopened.getByTestId('message').filter({ hasText: 'Is my order shipped?' }).waitFor();
  await reopened.getByTestId('chat-ended').filter({ hasText: 'What you write waits for them' }).waitFor();
  await says(reopened, reopened, 'Yes, it left the warehouse this morning.');
  await shot(agentPage, 'continuing-reopened-panel-agent');

  // She comes back and sees it.
  const { later, row: earlier } = await comesBack(hub, pages, context);
  await earlier.getByTestId('continue-conversation').click();
  await later.getByTestId('message').filter({ hasText: 'Yes, it left the warehouse this morning.' }).waitFor();
  await says(later, panelOf(agentPage, name), 'Great, thanks');
}));

test('an agent whose laptop dies hands the customer on: the next agent continues the same conversation', () => withShots('continuing-agent-gone', async (pages) => {
  const name = 'Lea handed on';
  const { agentPage: veraPage, customer, panel } = await inChat(pages, { username: 'vera-gone', max_chats: 1, name });
  await says(customer, panel, 'My invoice shows the wrong address');
  await says(panel, customer, 'Let me correct that');

  // Vera's page is gone; past the grace period Lea is told and waits at the front.
  await veraPage.context().close();
  await customer.getByTestId('agent-gone').waitFor({ timeout: waitMs(15000) });
  const tom = await createAgent(hub, { username: 'tom-next', display_name: 'Tom', categories: ['general'], max_chats: 1 });
  const tomPage = await newPage(browser, DESK);
  pages.push(tomPage);
  await agentSignsIn(tomPage, hub, tom);

  // Tom has the same conversation, Vera's line named as hers; Lea sees each line once.
  const next = panelOf(tomPage, name);
  await next.getByTestId('message').filter({ hasText: 'My invoice shows the wrong address' }).waitFor();
  await next.getByTestId('message').filter({ hasText: 'Let me correct that' }).waitFor();
  await next.getByTestId('transfer-note-text').filter({ hasText: 'Vera went offline; the customer waited for the next agent.' }).waitFor();
  await customer.getByTestId('conversation-continued').filter({ hasText: "You're now chatting with Tom." }).waitFor();
  assert.equal(await customer.getByTestId('message').filter({ hasText: 'Let me correct that' }).count(), 1);
  await says(customer, next, 'Thank you');
  await says(next, customer, 'Done: the new invoice is on its way');
  await shot(customer, 'continuing-agent-gone-customer');
  await shot(tomPage, 'continuing-agent-gone-agent');
}));

test('a browser without crypto.randomUUID (a plain-HTTP origin) still gets a random 128-bit visitor key', () => withShots('continuing-visitor-key', async (pages) => {
  const page = await newPage(browser);
  pages.push(page);
  // As on an insecure origin, where only getRandomValues is there.
  await page.addInitScript(() => { delete Crypto.prototype.randomUUID; });
  await page.goto(`${hub.url}/`);
  assert.equal(await page.evaluate(() => typeof crypto.randomUUID), 'undefined');
  const key = await (await page.waitForFunction(() => localStorage.getItem('switchboard.visitor'))).jsonValue();
  assert.match(key, /^[0-9a-f]{32}$/, `a CSPRNG key, not a time and Math.random: ${key}`);
  // Another browser, another key.
  const other = await newPage(browser);
  pages.push(other);
  await other.addInitScript(() => { delete Crypto.prototype.randomUUID; });
  await other.goto(`${hub.url}/`);
  const second = await (await other.waitForFunction(() => localStorage.getItem('switchboard.visitor'))).jsonValue();
  assert.notEqual(second, key);
}));

test('a customer back while nobody is online reads their conversation and writes into it while they wait; the agent gets it all', () => withShots('continuing-waiting', async (pages) => {
  const name = 'Mia waiting';
  // Mia comes back: in line, her conversation in view and the composer open.
  const { agent, later } = await backWhileNobodyOnline(pages, { username: 'vera-waiting', name, size: PHONE });
  await later.getByTestId('message').filter({ hasText: 'I will look into it' }).waitFor();
  await says(later, later, 'Still nothing today, order 2231');
  await expectClean(later, 'the customer waiting in their conversation');
  await shot(later, 'continuing-waiting-customer');

  // Vera is back the next morning: she takes it with Mia's line, and they go on.
  const morning = await signsInAgain(pages, agent);
  const again = panelOf(morning, name);
  await again.getByTestId('message').filter({ hasText: 'Still nothing today, order 2231' }).waitFor();
  await again.getByTestId('message').filter({ hasText: 'My parcel never came' }).waitFor();
  await says(again, later, 'A new parcel left this morning');
  assert.equal(await later.getByTestId('message').filter({ hasText: 'Still nothing today, order 2231' }).count(), 1);
  await shot(morning, 'continuing-waiting-agent');
}));

/** The panel's transcript, top to bottom: each line's text (with its meta), each notice as `[its testid]`. */
async function transcriptOrder(panel) {
  return panel.getByTestId('transcript').locator(':scope > li').evaluateAll((items) => items.map((li) => (
    li.classList.contains('notice') ? `[${li.dataset.testid}]` : li.textContent)));
}

test('after a reopen the agent reloads: the reopen mark stays where this turn begins, with the earlier turns and this turn\'s wait', () => withShots('continuing-reopen-reload', async (pages) => {
  const name = 'Ida reopen';
  const { agent, later } = await backWhileNobodyOnline(pages, { username: 'vera-reopen-reload', name, size: PHONE });
  // Written while she waits: this turn's, so after the reopen mark.
  await says(later, later, 'Order 3310 is still missing');
  const morning = await signsInAgain(pages, agent);
  const expected = ['My parcel never came', 'I will look into it', '[chat-reopened]', 'Order 3310 is still missing'];
  for (const [moment, page] of [['as it opens', morning], ['after a reload', null]]) {
    if (!page) await morning.reload();
    const panel = panelOf(morning, name);
    await panel.getByTestId('message').filter({ hasText: 'Order 3310 is still missing' }).waitFor();
    await panel.getByTestId('chat-reopened').filter({ hasText: `Conversation reopened: ${name} came back to it.` }).waitFor();
    await panel.getByTestId('message').filter({ hasText: 'My parcel never came' }).waitFor();
    const order = (await transcriptOrder(panel)).map((t) => expected.find((e) => t.includes(e))).filter(Boolean);
    assert.deepEqual(order, expected, moment);
    const details = panel.getByTestId('customer-details');
    await details.getByTestId('earlier-turns').filter({ hasText: 'Earlier in this conversation, before it was reopened' }).waitFor();
    assert.equal(await details.locator('dt', { hasText: 'Waited' }).textContent(), 'Waited this time', moment);
    // The earlier turns end where she joined the line again: her line while waiting is this turn's.
    const turns = details.getByTestId('earlier-turns');
    await turns.locator('summary').click();
    await turns.getByTestId('earlier-transcript').filter({ hasText: 'I will look into it' }).waitFor();
    assert.equal(await turns.getByTestId('earlier-transcript').filter({ hasText: 'Order 3310' }).count(), 0, moment);
  }
  await shot(morning, 'continuing-reopen-reload-agent');
}));

for (const [label, size] of [['phone', PHONE], ['desk', { width: 1280, height: 800 }]]) {
  test(`a customer waiting in their conversation reloads with nothing kept: the lines come back, named by their agent; no draft hint while waiting (${label})`, () => withShots(`continuing-waiting-reload-${label}`, async (pages) => {
    const name = `Uma waiting ${label}`;
    // Back while nobody is online: Vera's line says it is hers, as in the chat.
    const { agent, later } = await backWhileNobodyOnline(pages, { username: `vera-reload-wait-${label}`, name, size });
    const hers = later.getByTestId('message').filter({ hasText: 'I will look into it' });
    await hers.waitFor();
    assert.equal(await hers.getByTestId('message-author').textContent(), 'Vera');
    // Nothing typed is shown to anyone while waiting: the page does not say it is.
    const hint = later.getByTestId('composer-hint');
    assert.equal(await hint.isVisible(), false, 'no draft hint while waiting');
    await says(later, later, 'Still nothing today, order 2231');
    const width = await later.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= size.width, `fits (scrollWidth ${width})`);
    await shot(later, `continuing-waiting-reload-before-${label}`);

    // A reload that kept only the session's token: the lines come from the hub.
    await later.evaluate(() => {
      localStorage.clear();
      const kept = JSON.parse(sessionStorage.getItem('switchboard.customer'));
      sessionStorage.setItem('switchboard.customer', JSON.stringify({ token: kept.token, name: kept.name, category: kept.category, draftPreview: kept.draftPreview, lastSeq: 0, messages: [] }));
    });
    await later.reload();
    const again = later.getByTestId('message').filter({ hasText: 'I will look into it' });
    await again.waitFor();
    assert.equal(await again.getByTestId('message-author').textContent(), 'Vera');
    await later.getByTestId('message').filter({ hasText: 'Still nothing today, order 2231' }).waitFor();
    assert.equal(await later.getByTestId('message').filter({ hasText: 'Still nothing today, order 2231' }).count(), 1);
    assert.equal(await later.getByTestId('composer-hint').isVisible(), false, 'no draft hint after the reload either');
    await expectClean(later, 'the customer waiting in their conversation after a reload');
    await shot(later, `continuing-waiting-reload-after-${label}`);

    // Vera's closed page is gone for good (past its grace period): the page says nobody is online.
    await later.locator('#desk-status').waitFor();
    // Vera is back: the chat is live, and now what is typed is seen.
    const morning = await signsInAgain(pages, agent);
    const live = panelOf(morning, name);
    await live.getByTestId('message').filter({ hasText: 'Still nothing today, order 2231' }).waitFor();
    await later.getByTestId('conversation-continued').waitFor();
    await later.getByTestId('composer-hint').waitFor();
    await says(live, later, 'A new parcel left this morning');
  }));
}

test('a conversation handed on in its first turn and continued with the same agent: a reload shows the transfer note the opening showed, no other', () => withShots('continuing-handed-reload', async (pages) => {
  const ann = await createAgent(hub, { username: 'ann-handed', display_name: 'Ann', categories: ['general'], max_chats: 1 });
  const bob = await createAgent(hub, { username: 'bob-handed', display_name: 'Bob', categories: ['general'], max_chats: 2 });
  const annPage = await newPage(browser, DESK);
  const bobPage = await newPage(browser, DESK, { bypassCSP: true });
  pages.push(annPage, bobPage);
  await agentSignsIn(annPage, hub, ann);
  await agentSignsIn(bobPage, hub, bob, { available: false });
  const customer = await newPage(browser, { width: 1280, height: 800 }, { bypassCSP: true });
  pages.push(customer);
  const name = 'Iris';
  const annPanel = await joinedChat(customer, annPage, hub, 'general', name);
  await says(customer, annPanel, 'My card was charged twice');
  await says(annPanel, customer, 'Bob handles refunds');
  // Ann hands it to Bob; then she goes home.
  await bobPage.getByTestId('availability-toggle').click();
  await bobPage.locator('[data-testid="availability-toggle"][data-available="true"]').waitFor();
  await annPanel.getByTestId('transfer-button').click();
  await annPage.getByTestId('transfer-dialog').locator('[data-testid="transfer-agent"][data-name="Bob"]').click();
  await annPage.getByTestId('transfer-dialog').getByTestId('transfer-note').fill('Refund of the second charge');
  await annPage.getByTestId('transfer-dialog').getByTestId('transfer-submit').click();
  const first = panelOf(bobPage, name);
  await first.getByTestId('chat-transferred').filter({ hasText: 'Ann transferred this chat to you' }).waitFor();
  await says(first, customer, 'Refund sent');
  await annPage.close();
  await endsChat(customer);

  // She continues it: Bob, who had it, has it again, told who had it before him (the
  // hub's `transfer`, naming Ann, with no note: no hand-over this turn).
  const { later, row } = await comesBack(hub, pages, customer.context());
  await row.getByTestId('continue-conversation').click();
  await later.getByTestId('conversation-continued').waitFor();
  const again = panelOf(bobPage, name);
  await again.getByTestId('chat-reopened').waitFor();
  const opened = await again.getByTestId('transfer-note').allInnerTexts();
  assert.deepEqual(opened.map((t) => t.replace(/\s+/g, ' ')), ['Transferred by Ann No note.']);

  // After a reload, once the conversation's archive was read: the same note, not the
  // first turn's hand-over with its note.
  const read = bobPage.waitForResponse((r) => /\/api\/conversations\/[^/?]+$/.test(r.url()) && r.request().method() === 'GET');
  await bobPage.reload();
  await again.getByTestId('chat-reopened').waitFor();
  await (await read).finished();
  await again.getByTestId('message').filter({ hasText: 'Refund sent' }).waitFor();
  // What the read brought is in place once the page's requests are done.
  await bobPage.waitForLoadState('networkidle');
  assert.deepEqual(await again.getByTestId('transfer-note').allInnerTexts(), opened);
  await expectClean(bobPage, 'the agent console with a continued conversation handed on in its first turn');
}));
