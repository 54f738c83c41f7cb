// A conversation two agents had in turn: Ann answered, the customer ended the chat, Ann
// put it in Bob's list (the inbox's reassignment), and later the customer came back to it.
// Bob's console and the customer's page name each agent line by its author (Ann's as
// Ann's, Bob's as his own), after a reload too, and the archive shows the hand-over. At
// desk and phone sizes; axe on the console. And a chat Ann hands to Bob while it runs:
// his console names her lines hers and his his own after a reload and after a reconnect
// (as the hub names them), however little the page knew of where his lines begin; his work
// list names its last line Ann's.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newPage, createAgent, agentSignsIn, withShots, shot, hubAndBrowser, startForFile, says, sendMessage, joinedChat, panelOf, apiCall, expectClean, adminSignsIn, startProxy, conversationRow, endsChat, comesBack, waitMs } from './helpers.mjs';

let hub, browser;
startForFile(() => hubAndBrowser(), (started) => ({ hub, browser } = started));

/** The author a message line (by its text) names in `place`, or null when it names none. */
async function authorOf(place, text) {
  const line = place.getByTestId('message').filter({ hasText: text });
  await line.waitFor();
  const author = line.getByTestId('message-author');
  return (await author.count()) ? author.textContent() : null;
}

for (const [label, size] of [['desk', { width: 1366, height: 768 }], ['phone', { width: 390, height: 844 }]]) {
  test(`each line of a conversation reassigned and continued is named by its author (${label})`, () => withShots(`line-authors-${label}`, async (pages) => {
    const ann = await createAgent(hub, { username: `ann-lines-${label}`, display_name: 'Ann', categories: ['general'], max_chats: 2 });
    const bob = await createAgent(hub, { username: `bob-lines-${label}`, display_name: 'Bob', categories: ['general'], max_chats: 2 });
    const annPage = await newPage(browser, size);
    pages.push(annPage);
    await agentSignsIn(annPage, hub, ann);
    const customer = await newPage(browser, { width: 390, height: 844 }, { bypassCSP: true });
    pages.push(customer);
    const name = `Carla ${label}`;
    const panel = await joinedChat(customer, annPage, hub, 'general', name);
    const id = await panel.getAttribute('data-chat-id');
    await says(customer, panel, 'My parcel is late');
    await says(panel, customer, 'Let me ask the warehouse');
    await endsChat(customer);

    // Ann puts it in Bob's list, and goes home.
    const login = await apiCall(hub, 'POST', '/api/login', { username: ann.username, password: ann.password });
    const moved = await apiCall(hub, 'POST', `/api/conversations/${id}/assign`, { agent_id: bob.id }, login.data.token);
    assert.equal(moved.status, 200, JSON.stringify(moved.data));
    await annPage.close();

    // Bob is on the desk; she comes back to the conversation and it is his.
    const bobPage = await newPage(browser, size, { bypassCSP: true });
    pages.push(bobPage);
    await agentSignsIn(bobPage, hub, bob);
    const { later, row } = await comesBack(hub, pages, customer.context());
    // Its last line is Ann's, though it is Bob's conversation now.
    assert.match(await row.innerText(), /Ann: Let me ask the warehouse/);
    await row.getByTestId('continue-conversation').click();
    await later.getByTestId('conversation-continued').filter({ hasText: 'Bob' }).waitFor();

    const bobs = panelOf(bobPage, name);
    await bobs.waitFor();
    // Ann's line is hers on both sides, not Bob's.
    assert.equal(await authorOf(bobs, 'Let me ask the warehouse'), 'Ann');
    assert.equal(await authorOf(later, 'Let me ask the warehouse'), 'Ann');
    await bobs.getByTestId('transfer-from').filter({ hasText: 'Ann' }).waitFor();
    await says(later, bobs, 'Any news?');
    await says(bobs, later, 'It ships today');
    // Bob's line is his own in his console, and his on her page.
    assert.equal(await authorOf(bobs, 'It ships today'), null);
    assert.equal(await bobs.getByTestId('message').filter({ hasText: 'It ships today' }).getAttribute('data-mine'), 'true');
    assert.equal(await authorOf(later, 'It ships today'), 'Bob');
    const width = await bobPage.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= size.width, `the console fits (scrollWidth ${width})`);
    await expectClean(bobPage, `the console with a continued conversation (${label})`);
    await shot(bobPage, `line-authors-agent-${label}`);
    await shot(later, `line-authors-customer-${label}`);

    // A reload keeps the names on both sides.
    await bobPage.reload();
    // On a phone the list shows first: he picks the chat.
    const item = bobPage.locator(`[data-testid="chat-list-item"][data-customer="${name}"]`);
    await item.waitFor();
    if (label === 'phone') await item.click();
    assert.equal(await authorOf(panelOf(bobPage, name), 'Let me ask the warehouse'), 'Ann');
    assert.equal(await authorOf(panelOf(bobPage, name), 'It ships today'), null);
    await later.reload();
    assert.equal(await authorOf(later, 'Let me ask the warehouse'), 'Ann');
    assert.equal(await authorOf(later, 'It ships today'), 'Bob');

    // The archive shows Ann's hand-over to Bob between their lines.
    const admin = await newPage(browser, size);
    pages.push(admin);
    await adminSignsIn(admin, hub, 'archive');
    const archived = admin.getByTestId('archive-row').filter({ hasText: name });
    await archived.getByTestId('archive-open').click();
    await admin.getByTestId('archive-transfer').filter({ hasText: 'Ann transferred it to Bob' }).waitFor();
    const by = async (text) => (await admin.getByTestId('archive-message').filter({ hasText: text }).getByTestId('archive-message-by').textContent()).split(' · ')[0];
    assert.deepEqual([await by('Let me ask the warehouse'), await by('It ships today'), await by('My parcel is late')], ['Ann', 'Bob', 'customer']);
    await shot(admin, `line-authors-archive-${label}`);
  }));
}

test('a chat handed on while it runs names each agent on their own lines after a reload and a reconnect', () => withShots('line-authors-live-transfer', async (pages) => {
  const size = { width: 1366, height: 768 };
  const ann = await createAgent(hub, { username: 'ann-live-lines', display_name: 'Ann', categories: ['general'], max_chats: 2 });
  const bob = await createAgent(hub, { username: 'bob-live-lines', display_name: 'Bob', categories: ['general'], max_chats: 2 });
  // Bob reaches the hub through a proxy the test cuts.
  const proxy = await startProxy(hub);
  try {
    const annPage = await newPage(browser, size);
    pages.push(annPage);
    await agentSignsIn(annPage, hub, ann);
    const customer = await newPage(browser, { width: 390, height: 844 });
    pages.push(customer);
    const name = 'Carla live';
    const annPanel = await joinedChat(customer, annPage, hub, 'general', name);
    await says(customer, annPanel, 'My parcel is late');
    await says(annPanel, customer, 'Let me ask the warehouse');

    // Bob comes on; Ann hands him the chat.
    const bobPage = await newPage(browser, size);
    pages.push(bobPage);
    await agentSignsIn(bobPage, { url: proxy.url }, bob);
    await annPanel.getByTestId('transfer-button').click();
    const dialog = annPage.getByTestId('transfer-dialog');
    await dialog.locator('[data-testid="transfer-agent"][data-name="Bob"]').click();
    await dialog.getByTestId('transfer-submit').click();
    const bobs = panelOf(bobPage, name);
    await bobs.waitFor();
    assert.equal(await authorOf(bobs, 'Let me ask the warehouse'), 'Ann');
    // His list of chats names its last line's author: Ann, though the conversation is his now
    // (the live chat is its one row; the work list has it once it is not live).
    await bobPage.locator(`[data-testid="chat-list-item"][data-customer="${name}"]`).getByTestId('chat-item-preview').filter({ hasText: 'Ann: Let me ask the warehouse' }).waitFor();
    assert.equal(await conversationRow(bobPage, name).count(), 0, 'one row for the conversation');
    await says(bobs, customer, 'It ships today');
    assert.equal(await authorOf(bobs, 'It ships today'), null);

    // A reload: the page knows only what the hub sends again.
    await bobPage.reload();
    await bobs.waitFor();
    assert.equal(await authorOf(bobs, 'Let me ask the warehouse'), 'Ann');
    assert.equal(await authorOf(bobs, 'It ships today'), null, 'his own line, not Ann\'s');
    assert.equal(await bobs.getByTestId('message').filter({ hasText: 'It ships today' }).getAttribute('data-mine'), 'true');

    // A reconnect: his next line reaches the hub, its acknowledgement is lost with the
    // connection, and the hub's welcome brings the line back.
    proxy.hold();
    await sendMessage(bobs, 'The tracking number follows');
    await customer.getByTestId('message').filter({ hasText: 'The tracking number follows' }).waitFor();
    proxy.cut();
    // Nothing held is left to send: the hub's frames flow on the next connection.
    proxy.release();
    await bobPage.getByTestId('connection-state').filter({ hasText: 'reconnecting' }).waitFor({ timeout: waitMs(15000) });
    proxy.restore();
    await bobPage.getByTestId('connection-state').filter({ hasText: 'online' }).waitFor({ timeout: waitMs(20000) });
    await bobs.locator('[data-testid="message"][data-seq]').filter({ hasText: 'The tracking number follows' }).waitFor();
    assert.equal(await authorOf(bobs, 'The tracking number follows'), null);
    assert.equal(await authorOf(bobs, 'It ships today'), null);
    assert.equal(await authorOf(bobs, 'Let me ask the warehouse'), 'Ann');
    // And a reload after it: the same names.
    await bobPage.reload();
    await bobs.waitFor();
    assert.deepEqual(
      [await authorOf(bobs, 'Let me ask the warehouse'), await authorOf(bobs, 'It ships today'), await authorOf(bobs, 'The tracking number follows')],
      ['Ann', null, null],
    );
    await shot(bobPage, 'line-authors-live-transfer');
  } finally {
    await proxy.close();
  }
}));
