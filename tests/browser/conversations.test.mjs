// The agent's conversations as a work list: a live chat is one row, in "My chats" (not a
// second time in the work list); the agent marks it waiting on the customer, snoozes it,
// reopens it and resolves it from its open panel's header (which ends the live chat on the
// customer's page); then, no longer live, it is in the list, where its row's actions do the
// same and the list's filter shows each status; the page passes axe with the header and the
// list shown, on a desk and a phone. The team's list: an offline
// message is under "Unassigned" for an agent of its category (not for one of another), the
// agent assigns it to themselves and it moves to "Mine"; the category filter narrows it.
// The view buttons count their conversations for the status and category shown, read as
// part of each button's name ("Unassigned, 3"), and follow the list as it refreshes.
// Each row says how long its customer has waited ("Waiting 2 h", moving on with the
// page's clock), longest first; a snooze until a date and time chosen in a dialog
// (a time gone by refused there), from the keyboard, focus kept on the row.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { newPage, createAgent, adminToken, agentSignsIn, withShots, shot, hubAndBrowser, startForFile, openPages, joinedChat, panelOf, apiCall, expectClean, agentChattingWith, agentSignedInOn, conversationRow, backToTheList, waitMs } from './helpers.mjs';

const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

let hub, browser;
// A short grace period: a customer who closed the page is gone after 2 s, not 30.
startForFile(() => hubAndBrowser({ RESUME_GRACE_SECS: '2' }), (started) => ({ hub, browser } = started));

async function seriousAxe(page) {
  await page.addScriptTag({ path: AXE });
  return page.evaluate(async () => (await window.axe.run(document, { resultTypes: ['violations'] })).violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`));
}

for (const [label, size] of [['desk', { width: 1366, height: 768 }], ['phone', { width: 390, height: 844 }]]) {
  test(`an agent works a conversation by status from its header, then from the list (${label})`, () => withShots(`conversations-${label}`, async (pages) => {
    const wanda = { username: `wanda-${label}`, display_name: 'Wanda', categories: ['general'] };
    const name = `Olive ${label}`;
    const { agentPage, customer } = await agentChattingWith(browser, hub, pages, size, wanda, name, 'Where is my order?');

    // The open chat's header has its status, Resolve, Waiting on customer, Snooze and "+ Label".
    const header = panelOf(agentPage, name).getByTestId('chat-conversation-controls');
    const status = header.getByTestId('chat-conversation-status');
    await status.filter({ hasText: 'Open' }).waitFor();
    // The header's controls are drawn anew as each list read lands: measured together in one
    // evaluate on the header itself (which stays), never on a control that may be redrawn.
    const controls = ['chat-resolve', 'chat-pending', 'chat-conversation-snooze'];
    await header.getByTestId(controls[0]).waitFor();
    const boxes = await header.evaluate((host, ids) => ids.map((id) => [id, host.querySelector(`[data-testid="${id}"]`)?.getBoundingClientRect().toJSON() ?? null]), controls);
    for (const [control, box] of boxes) {
      assert.ok(box && box.x >= 0 && box.x + box.width <= size.width, `${control} on screen: ${JSON.stringify(box)}`);
    }
    assert.deepEqual(await seriousAxe(agentPage), []);
    await shot(agentPage, `conversations-header-${label}`);
    // One name for each status, everywhere: the header's action is the filter's word for it.
    const words = await header.evaluate((host) => ({
      header: host.querySelector('[data-testid="chat-pending"]').textContent,
      filter: document.querySelector('#conversation-filter option[value="pending"]').textContent,
    }));
    assert.deepEqual(words, { header: 'Waiting on customer', filter: 'Waiting on customer' });
    await header.getByRole('button', { name: `Waiting on customer: the conversation with ${name}` }).click();
    await status.filter({ hasText: 'Waiting on customer' }).waitFor();
    // Its one row, in "My chats", says so in the same words.
    const item = agentPage.locator(`[data-testid="chat-list-item"][data-customer="${name}"]`);
    await item.getByTestId('chat-item-waiting').filter({ hasText: 'Waiting on customer' }).waitFor({ state: 'attached' });
    await header.getByTestId('chat-conversation-snooze').selectOption('hour');
    await status.filter({ hasText: /^Snoozed until / }).waitFor();
    await header.getByRole('button', { name: `Mark as open: the conversation with ${name}` }).click();
    await status.filter({ hasText: 'Open' }).waitFor();

    // Not in the work list while it is live: one row for one conversation.
    await backToTheList(agentPage);
    const row = conversationRow(agentPage, name);
    await agentPage.getByTestId('conversation-empty').filter({ hasText: 'Nothing here besides your chats above.' }).waitFor();
    assert.equal(await row.count(), 0);
    await item.click();

    // Resolving the live chat ends it for the customer, who may rate it.
    await header.getByRole('button', { name: `Resolve: the conversation with ${name}` }).click();
    await customer.getByTestId('rating').waitFor();
    await header.waitFor({ state: 'hidden' });
    await backToTheList(agentPage);
    await agentPage.getByTestId('conversation-filter').selectOption('resolved');
    await row.getByTestId('conversation-status').filter({ hasText: 'Resolved' }).waitFor();
    await shot(agentPage, `conversations-resolved-${label}`);

    // No longer live, it is a row of the list, worked from there.
    await row.getByRole('button', { name: `Reopen: ${name}` }).click();
    await row.waitFor({ state: 'detached' });
    await agentPage.getByTestId('conversation-filter').selectOption('open,pending,snoozed');
    await row.getByTestId('conversation-status').filter({ hasText: 'Open' }).waitFor();
    await row.getByTestId('conversation-last').filter({ hasText: 'Where is my order?' }).waitFor();
    assert.deepEqual(await seriousAxe(agentPage), []);
    await shot(agentPage, `conversations-open-${label}`);
    await row.getByTestId('conversation-more').selectOption('pending');
    await row.getByTestId('conversation-status').filter({ hasText: 'Waiting on customer' }).waitFor();
    // The status is a badge read as one; no action is named as a status is (no "Open" beside
    // "Open", no "Reopen" of one never closed), and the customer's name shows the conversation.
    const named = await agentPage.evaluate((who) => {
      const r = document.querySelector(`#conversation-list [data-customer="${CSS.escape(who)}"]`);
      return {
        status: r.querySelector('[data-testid="conversation-status"]').textContent,
        buttons: [...r.querySelectorAll('button')].map((b) => [b.textContent.trim(), b.getAttribute('aria-label')]),
      };
    }, name);
    assert.equal(named.status, 'Status: Waiting on customer');
    assert.deepEqual(named.buttons, [[name, `Show the conversation with ${name}`], ['Resolve', `Resolve: ${name}`], ['Mark as open', `Mark as open: ${name}`]]);
    await row.getByTestId('conversation-more').selectOption('hour');
    await row.getByTestId('conversation-status').filter({ hasText: 'Snoozed' }).waitFor();
    assert.match(await row.innerText(), /until /);

    // The filter shows one status at a time.
    await agentPage.getByTestId('conversation-filter').selectOption('open');
    await agentPage.getByTestId('conversation-empty').waitFor();
    await agentPage.getByTestId('conversation-filter').selectOption('snoozed');
    await row.waitFor();
    await row.getByRole('button', { name: `Resolve: ${name}` }).click();
    await row.waitFor({ state: 'detached' });
    await agentPage.getByTestId('conversation-filter').selectOption('resolved');
    await row.getByTestId('conversation-status').filter({ hasText: 'Resolved' }).waitFor();
  }));
}

for (const [label, size] of [['desk', { width: 1366, height: 768 }], ['phone', { width: 390, height: 844 }]]) {
  test(`a customer who left is one row, in My chats, until its panel is closed (${label})`, () => withShots(`conversations-left-${label}`, async (pages) => {
    const labelId = `left-${label}`;
    const made = await apiCall(hub, 'POST', '/api/admin/labels', { id: labelId, name: `Left ${label}`, colour: '#8250df' }, await adminToken(hub));
    assert.equal(made.status, 201, JSON.stringify(made.data));
    const wanda = { username: `wanda-left-${label}`, display_name: 'Wanda', categories: ['general'] };
    const name = `Lou ${label}`;
    const { agentPage, customer } = await agentChattingWith(browser, hub, pages, size, wanda, name, 'Are you still there?');
    const panel = panelOf(agentPage, name);
    const header = panel.getByTestId('chat-conversation-controls');
    const item = agentPage.locator(`[data-testid="chat-list-item"][data-customer="${name}"]`);

    // She closes the page and is gone: the chat ends, the conversation stays hers, open.
    await customer.close();
    await panel.getByTestId('chat-ended').filter({ hasText: 'stays open in your list' }).waitFor({ timeout: waitMs(15000) });
    // Parked and labelled from its header; its "My chats" item says the same status.
    await header.getByRole('button', { name: `Waiting on customer: the conversation with ${name}` }).click();
    await header.getByTestId('chat-conversation-status').filter({ hasText: 'Waiting on customer' }).waitFor();
    await header.getByTestId('chat-conversation-label-add').selectOption(labelId);
    await header.locator(`[data-testid="chat-conversation-label"][data-label="${labelId}"]`).waitFor();
    await item.getByTestId('chat-item-waiting').filter({ hasText: 'customer left · Waiting on customer' }).waitFor({ state: 'attached' });

    // The work list does not list it a second time: a read of the waiting ones holds it
    // and leaves it out, and "Mine" counts no row.
    await backToTheList(agentPage);
    await agentPage.getByTestId('conversation-filter').selectOption('pending');
    await agentPage.getByTestId('conversation-empty').filter({ hasText: 'Nothing here besides your chats above.' }).waitFor();
    const row = conversationRow(agentPage, name);
    assert.equal(await row.count(), 0, 'one row for the conversation');
    await agentPage.getByRole('button', { name: 'Mine, 0', exact: true }).waitFor();
    assert.equal(await item.count(), 1);
    await expectClean(agentPage, `a customer gone, in My chats (${label})`);
    await shot(agentPage, `conversations-left-${label}`);

    // Its panel closed, it is a row of the list, with the status and label its header had.
    await item.click();
    await panel.getByTestId('close-panel').click();
    await backToTheList(agentPage);
    await row.getByTestId('conversation-status').filter({ hasText: 'Waiting on customer' }).waitFor();
    await row.locator(`[data-testid="conversation-label"][data-label="${labelId}"]`).waitFor();
    await agentPage.getByRole('button', { name: 'Mine, 1', exact: true }).waitFor();
    assert.equal(await item.count(), 0, 'gone from My chats');
  }));
}

test('an agent sets the open chat\'s status from the keyboard, in the message box and in its header', () => withShots('conversations-keys', async (pages) => {
  const wanda = { username: 'wanda-keys', display_name: 'Wanda', categories: ['general'] };
  const name = 'Olive keys';
  const size = { width: 1366, height: 768 };
  const { agentPage, customer } = await agentChattingWith(browser, hub, pages, size, wanda, name, 'Any news?', { keepCsp: true });
  const header = panelOf(agentPage, name).getByTestId('chat-conversation-controls');
  const status = header.getByTestId('chat-conversation-status');
  await status.filter({ hasText: 'Open' }).waitFor();

  // Alt+W, Alt+Z and Alt+O work even while typing in the message box.
  await panelOf(agentPage, name).getByTestId('message-input').focus();
  await agentPage.keyboard.press('Alt+KeyW');
  await status.filter({ hasText: 'Waiting on customer' }).waitFor();
  await agentPage.keyboard.press('Alt+KeyZ');
  // Snoozed, and until when (waited for: the hub's word of the earlier "Waiting on
  // customer" may redraw the header once more after the snooze was drawn).
  await status.filter({ hasText: /^Snoozed until / }).waitFor();
  await agentPage.keyboard.press('Alt+KeyO');
  await status.filter({ hasText: 'Open' }).waitFor();
  // And with focus in the header's controls (each names its shortcut), kept there as it is drawn anew.
  const pending = header.getByTestId('chat-pending');
  assert.equal(await pending.getAttribute('aria-keyshortcuts'), 'Alt+W');
  await pending.focus();
  await agentPage.keyboard.press('Alt+KeyZ');
  await status.filter({ hasText: 'Snoozed' }).waitFor();
  assert.equal(await agentPage.evaluate(() => document.activeElement?.dataset.testid), 'chat-pending', 'focus kept on the same control');
  await agentPage.keyboard.press('Alt+KeyO');
  await status.filter({ hasText: 'Open' }).waitFor();
  // Alt+R resolves it, which ends the live chat for the customer.
  await agentPage.keyboard.press('Alt+KeyR');
  await customer.getByTestId('rating').waitFor();
}));

for (const [label, size] of [['desk', { width: 1366, height: 768 }], ['phone', { width: 390, height: 844 }]]) {
  test(`an agent picks up an offline message from the team's unassigned list (${label})`, () => withShots(`conversations-team-${label}`, async (pages) => {
    const leave = async (name, category) => {
      const left = await apiCall(hub, 'POST', '/api/offline-messages',
        { category, name, email: 'someone@example.com', text: `${name} needs a hand` });
      assert.equal(left.status, 201, JSON.stringify(left.data));
    };
    const general = `Gina ${label}`, sales = `Sol ${label}`, billing = `Bill ${label}`;
    await leave(general, 'general');
    await leave(sales, 'sales');
    await leave(billing, 'billing');
    const vera = { username: `vera-${label}`, display_name: 'Vera', categories: ['general', 'sales'] };
    const agentPage = await agentSignedInOn(browser, hub, pages, size, vera);

    // Unassigned: her categories' messages, not Billing's (she does not serve it).
    const unassigned = agentPage.getByRole('button', { name: 'Unassigned' });
    await unassigned.focus();
    await agentPage.keyboard.press('Enter');
    assert.equal(await unassigned.getAttribute('aria-pressed'), 'true');
    const row = conversationRow(agentPage, general);
    await row.waitFor();
    await conversationRow(agentPage, sales).waitFor();
    assert.equal(await conversationRow(agentPage, billing).count(), 0);
    // She serves two categories: each row names its own.
    await row.getByTestId('conversation-category').filter({ hasText: 'General' }).waitFor();
    await conversationRow(agentPage, sales).getByTestId('conversation-category').filter({ hasText: 'Sales' }).waitFor();
    await expectClean(agentPage, `the unassigned list (${label})`);
    await shot(agentPage, `conversations-unassigned-${label}`);

    // The category filter narrows it.
    await agentPage.getByTestId('conversation-category-filter').selectOption('sales');
    await conversationRow(agentPage, general).waitFor({ state: 'detached' });
    await conversationRow(agentPage, sales).waitFor();
    await agentPage.getByTestId('conversation-category-filter').selectOption('');
    await row.waitFor();

    // She assigns it to herself: out of Unassigned, into Mine, with her actions.
    await row.getByRole('button', { name: `Assign to me: ${general}` }).click();
    await row.waitFor({ state: 'detached' });
    await agentPage.getByRole('button', { name: 'Mine' }).click();
    await row.getByRole('button', { name: `Resolve: ${general}` }).waitFor();
    assert.equal(await conversationRow(agentPage, sales).count(), 0);
    // Everyone's: both, hers with its actions, the other one unassigned.
    await agentPage.getByRole('button', { name: 'All' }).click();
    await conversationRow(agentPage, sales).getByRole('button', { name: `Assign to me: ${sales}` }).waitFor();
    await row.getByRole('button', { name: `Resolve: ${general}` }).waitFor();
    await expectClean(agentPage, `everyone's list (${label})`);
    await shot(agentPage, `conversations-all-${label}`);
  }));
}

for (const [label, size] of [['desk', { width: 1366, height: 768 }], ['phone', { width: 390, height: 844 }]]) {
  test(`the view buttons count the conversations of the status and category shown (${label})`, () => withShots(`conversations-counts-${label}`, async (pages) => {
    // A category of this test's own, so nothing another test leaves is counted.
    const category = `counted-${label}`;
    const admin = await adminToken(hub);
    const made = await apiCall(hub, 'POST', '/api/admin/categories', { id: category, name: `Counted ${label}` }, admin);
    assert.equal(made.status, 201, JSON.stringify(made.data));
    const leave = async (name) => {
      const left = await apiCall(hub, 'POST', '/api/offline-messages',
        { category, name, email: 'someone@example.com', text: `${name} needs a hand` });
      assert.equal(left.status, 201, JSON.stringify(left.data));
    };
    const names = ['Ada', 'Ben', 'Cy'].map((n) => `${n} ${label}`);
    for (const n of names) await leave(n);
    const cora = { username: `cora-${label}`, display_name: 'Cora', categories: [category] };
    const agentPage = await agentSignedInOn(browser, hub, pages, size, cora);

    const view = (name) => agentPage.getByRole('button', { name, exact: true });
    // `timeout`: past the list's periodic refresh (10 s) when only that brings the change.
    const counted = async (mine, unassigned, all, timeout) => {
      await view(`Mine, ${mine}`).waitFor({ timeout });
      await view(`Unassigned, ${unassigned}`).waitFor({ timeout });
      await view(`All, ${all}`).waitFor({ timeout });
    };
    await counted(0, 3, 3);
    assert.equal(await view('Mine, 0').getAttribute('aria-pressed'), 'true');
    await expectClean(agentPage, `the counted views (${label})`);
    await shot(agentPage, `conversations-counts-${label}`);

    // She takes one from Unassigned: the counts follow the list.
    await view('Unassigned, 3').click();
    const row = conversationRow(agentPage, names[0]);
    await row.getByRole('button', { name: `Assign to me: ${names[0]}` }).click();
    await row.waitFor({ state: 'detached' });
    await counted(1, 2, 3);
    // One more left meanwhile: counted at the list's next refresh.
    await leave(`Dee ${label}`);
    await counted(1, 3, 4, waitMs(25000));
    // Another status counts its own: nothing resolved yet.
    await agentPage.getByTestId('conversation-filter').selectOption('resolved');
    await counted(0, 0, 0);
    await agentPage.getByTestId('conversation-filter').selectOption('open,pending,snoozed');
    await counted(1, 3, 4);
    // A label narrows the list, not the counts, and a note says so.
    const vip = await apiCall(hub, 'POST', '/api/admin/labels', { name: `Counted ${label}`, colour: '#d29922', id: category }, admin);
    assert.equal(vip.status, 201, JSON.stringify(vip.data));
    await agentPage.getByTestId('conversation-filter').selectOption('open');
    await agentPage.getByTestId('conversation-label-filter').selectOption(category);
    await agentPage.getByTestId('conversation-empty').waitFor();
    await agentPage.getByTestId('conversation-counts-note').waitFor();
    await counted(1, 3, 4);
    await agentPage.getByTestId('conversation-label-filter').selectOption('');
    await agentPage.getByTestId('conversation-counts-note').waitFor({ state: 'hidden' });
    await expectClean(agentPage, `the counted views after a take (${label})`);
    await shot(agentPage, `conversations-counts-taken-${label}`);
  }));
}

// Under load a CI run saw the list of a filter chosen earlier: the answer to the earlier
// choice came last and was shown. The list is the last choice's, whatever answers last.
test('the list is the last filter chosen, though an earlier one answers last', () => withShots('conversations-late-answer', async (pages) => {
  const category = 'late-answer';
  const admin = await adminToken(hub);
  const made = await apiCall(hub, 'POST', '/api/admin/categories', { id: category, name: 'Late answer' }, admin);
  assert.equal(made.status, 201, JSON.stringify(made.data));
  const left = await apiCall(hub, 'POST', '/api/offline-messages',
    { category, name: 'Flo', email: 'flo@example.com', text: 'Flo needs a hand' });
  assert.equal(left.status, 201, JSON.stringify(left.data));
  const agent = await createAgent(hub, { username: 'lena', display_name: 'Lena', categories: [category] });
  const agentPage = await newPage(browser);
  pages.push(agentPage);
  await agentSignsIn(agentPage, hub, agent);
  await agentPage.getByRole('button', { name: 'Unassigned, 1' }).click();
  await conversationRow(agentPage, 'Flo').waitFor();
  // The resolved list (empty) answers a second late; open is chosen again meanwhile.
  await agentPage.route('**/api/inbox?*status=resolved*', async (route) => {
    await new Promise((r) => setTimeout(r, 1000));
    await route.continue();
  });
  const late = agentPage.waitForResponse((r) => r.url().includes('status=resolved'));
  const asked = agentPage.waitForRequest((r) => r.url().includes('status=resolved'));
  await agentPage.getByTestId('conversation-filter').selectOption('resolved');
  await asked;
  await agentPage.getByTestId('conversation-filter').selectOption('open,pending,snoozed');
  await late;
  // The late answer, had it been taken, is on screen within a moment of arriving.
  await agentPage.waitForTimeout(300);
  assert.equal(await conversationRow(agentPage, 'Flo').count(), 1, 'the open list is shown');
  assert.equal(await agentPage.getByTestId('conversation-empty').isVisible(), false, 'not the resolved list');
}));

test('a snooze that runs out draws the agent\'s attention and marks the row until opened, through reloads', () => withShots('conversations-snooze-ended', async (pages) => {
  const agent = await createAgent(hub, { username: 'wanda-wakes', display_name: 'Wanda', categories: ['general'] });
  const agentPage = await newPage(browser, { width: 1366, height: 768 }, { bypassCSP: true });
  pages.push(agentPage);
  // This computer's clock runs an hour less 4 s behind: "Snooze for 1 hour" ends 4 s from
  // now by the hub's clock (which decides when a snooze ran out).
  await agentPage.addInitScript(() => {
    const realNow = Date.now;
    Date.now = () => realNow() - 3_600_000 + 4_000;
  });
  // Every title the page shows, kept: the title flashes for a few seconds only (it stops
  // on a page looked at), so a slow machine could check it after the flash stopped.
  await agentPage.addInitScript(() => {
    window.titlesShown = [];
    document.addEventListener('DOMContentLoaded', () => {
      const keep = () => window.titlesShown.push(document.title);
      new MutationObserver(keep).observe(document.head, { subtree: true, childList: true, characterData: true });
    });
  });
  await agentSignsIn(agentPage, hub, agent);
  const [customer] = await openPages(browser, pages, [{ width: 390, height: 844 }]);
  await joinedChat(customer, agentPage, hub, 'general', 'Sleepy');
  // She closes the page: her chat ends, the conversation stays open; its panel closed, it
  // is a row of the list.
  await customer.close();
  await panelOf(agentPage, 'Sleepy').getByTestId('chat-ended').filter({ hasText: 'stays open in your list' }).waitFor({ timeout: waitMs(15000) });
  await panelOf(agentPage, 'Sleepy').getByTestId('close-panel').click();
  const row = conversationRow(agentPage, 'Sleepy');
  await row.getByTestId('conversation-status').filter({ hasText: 'Open' }).waitFor();
  assert.equal(await row.getByTestId('conversation-snooze-ended').count(), 0);

  await row.getByTestId('conversation-more').selectOption('hour');
  await row.getByTestId('conversation-status').filter({ hasText: 'Snoozed' }).waitFor();
  // The hub wakes it and tells the agent: open again, marked, the title flashing.
  await row.getByTestId('conversation-status').filter({ hasText: 'Open' }).waitFor({ timeout: waitMs(30_000) });
  await row.getByTestId('conversation-snooze-ended').filter({ hasText: 'Snooze ended' }).waitFor();
  await agentPage.waitForFunction(() => window.titlesShown.some((title) => title.includes('Snooze ended: Sleepy')));
  assert.deepEqual(await seriousAxe(agentPage), []);
  await shot(agentPage, 'conversations-snooze-ended-desk');
  await agentPage.setViewportSize({ width: 390, height: 844 });
  await backToTheList(agentPage);
  await row.getByTestId('conversation-snooze-ended').waitFor();
  await shot(agentPage, 'conversations-snooze-ended-phone');
  await agentPage.setViewportSize({ width: 1366, height: 768 });

  // The mark is the server's: a reloaded console still shows it.
  await agentPage.reload();
  await agentPage.getByTestId('connection-state').filter({ hasText: 'online' }).waitFor();
  await row.getByTestId('conversation-snooze-ended').filter({ hasText: 'Snooze ended' }).waitFor();

  // Opened: the mark goes, and stays gone after a reload.
  const cleared = agentPage.waitForResponse((r) => r.url().endsWith('/opened') && r.request().method() === 'POST');
  await row.getByTestId('conversation-open').click();
  assert.equal((await cleared).status(), 204);
  await agentPage.getByTestId('conversation-snooze-ended').waitFor({ state: 'detached' });
  await agentPage.reload();
  await agentPage.getByTestId('connection-state').filter({ hasText: 'online' }).waitFor();
  await row.getByTestId('conversation-status').filter({ hasText: 'Open' }).waitFor();
  assert.equal(await row.getByTestId('conversation-snooze-ended').count(), 0, 'gone for good');
}));

for (const [label, size] of [['desk', { width: 1280, height: 800 }], ['phone', { width: 390, height: 844 }]]) {
  test(`rows say how long each customer has waited, and a snooze can be until a chosen time (${label})`, () => withShots(`conversations-waited-${label}`, async (pages) => {
    const category = `waited-${label}`;
    const admin = await adminToken(hub);
    const made = await apiCall(hub, 'POST', '/api/admin/categories', { id: category, name: `Waited ${label}` }, admin);
    assert.equal(made.status, 201, JSON.stringify(made.data));
    const early = `Early ${label}`, late = `Late ${label}`;
    for (const name of [early, late]) {
      const left = await apiCall(hub, 'POST', '/api/offline-messages',
        { category, name, email: 'someone@example.com', text: `${name} needs a hand` });
      assert.equal(left.status, 201, JSON.stringify(left.data));
    }
    const agent = await createAgent(hub, { username: `wendy-${label}`, display_name: 'Wendy', categories: [category] });
    const agentPage = await newPage(browser, size, { bypassCSP: true });
    pages.push(agentPage);
    // The page's clock, running from now: moved on below as a working day moves on.
    await agentPage.clock.install();
    await agentSignsIn(agentPage, hub, agent, { available: false });
    await agentPage.getByRole('button', { name: /^Unassigned/ }).click();

    // How long, not a date; the one waiting longest first.
    const waited = (name) => conversationRow(agentPage, name).getByTestId('conversation-waiting');
    await waited(early).filter({ hasText: /^Waiting (<1 min|1 min)$/ }).waitFor();
    const order = await agentPage.getByTestId('conversation-item').evaluateAll((rows) => rows.map((r) => r.dataset.customer));
    assert.deepEqual(order, [early, late]);
    assert.match(await waited(early).locator('time').getAttribute('title'), /\d/, 'the exact time in its title');
    // Her line as she wrote it (her name heads the row already), marked an offline message.
    assert.equal(await conversationRow(agentPage, early).getByTestId('conversation-last').innerText(), `${early} needs a hand`);
    await conversationRow(agentPage, early).getByTestId('conversation-offline').filter({ hasText: 'Offline message' }).waitFor();
    // Two hours on: the rows say so without a reload of the page.
    await agentPage.clock.fastForward('02:00:00');
    await waited(early).filter({ hasText: 'Waiting 2 h' }).waitFor();
    await agentPage.clock.fastForward('48:00:00');
    await waited(late).filter({ hasText: 'Waiting 2 d' }).waitFor();
    await shot(agentPage, `conversations-waited-${label}`);

    // Hers, then snoozed until a time she chooses, from the keyboard.
    const row = conversationRow(agentPage, early);
    await row.getByRole('button', { name: `Assign to me: ${early}` }).click();
    await row.waitFor({ state: 'detached' });
    await agentPage.getByRole('button', { name: /^Mine/ }).click();
    await row.getByTestId('conversation-more').focus();
    await row.getByTestId('conversation-more').selectOption('until');
    const dialog = agentPage.getByRole('dialog', { name: `Snooze the conversation with ${early}` });
    await dialog.waitFor();
    const until = dialog.getByLabel('Snooze until');
    assert.equal(await agentPage.evaluate(() => document.activeElement?.type), 'datetime-local', 'focus is in the field');
    // A time gone by is refused, in the dialog.
    await until.fill('2020-01-01T09:00');
    await agentPage.keyboard.press('Enter');
    await dialog.getByRole('alert').filter({ hasText: 'Choose a time in the future' }).waitFor();
    await expectClean(agentPage, `the snooze dialog (${label})`);
    await shot(agentPage, `conversations-snooze-until-${label}`);
    // Three days on, at 10:30 by this computer's clock.
    const chosen = await agentPage.evaluate(() => {
      const d = new Date(Date.now() + 3 * 24 * 3600 * 1000);
      d.setHours(10, 30, 0, 0);
      const local = new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
      return { local, ms: d.getTime() };
    });
    await until.fill(chosen.local);
    await dialog.getByRole('button', { name: 'Snooze', exact: true }).click();
    await dialog.waitFor({ state: 'hidden' });
    assert.equal(await agentPage.evaluate(() => document.activeElement?.dataset.testid), 'conversation-open', 'focus back on its row');
    await row.getByTestId('conversation-status').filter({ hasText: 'Snoozed' }).waitFor();
    await row.getByTestId('conversation-waiting').filter({ hasText: /^Snoozed until / }).waitFor();
    assert.equal(await agentPage.evaluate(() => document.activeElement?.closest('[data-id]')?.dataset.customer), early, 'focus still on its row, drawn anew');
    const inbox = await agentPage.evaluate(async (cat) => (await (await fetch(`/api/inbox?view=mine&status=snoozed&category=${cat}`)).json()), category);
    assert.equal(inbox.items[0].snoozed_until, chosen.ms, 'snoozed until the very time chosen');
  }));
}
