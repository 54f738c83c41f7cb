// A conversation without a live customer, worked from the list's "More…": its holder adds
// an internal note (a dialog; the note is in the conversation when opened) and assigns it
// to a teammate of its category (a dialog with the category's agents); it leaves her
// "Mine" and enters his, and he is told. An admin does the same from the archive's opened
// conversation ("Assign to…"). Axe on each dialog, at desk and phone sizes. The open
// conversation's header has the same entry points, as Chatwoot's has: "Add note" (the
// panel's note field, by keyboard too) on a live chat and on one whose customer left, and,
// no customer live in it, "Assign" (the same dialog; a live chat has "Transfer" instead),
// after which the panel is no longer the agent's to write in.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newPage, createAgent, agentSignedInOn, adminSignsIn, adminToken, withShots, shot, hubAndBrowser, startForFile, apiCall, expectClean, conversationRow, backToTheList, openPages, joinedChat, sendMessage, waitMs } from './helpers.mjs';

let hub, browser;
// A short grace period: a customer who closed the page is gone after 2 s, not 30.
startForFile(() => hubAndBrowser({ RESUME_GRACE_SECS: '2' }), (started) => ({ hub, browser } = started));

/** The header controls' names and boxes, read in one step from the header (which stays while they are redrawn). */
function headerControls(header) {
  return header.evaluate((host) => [...host.querySelectorAll('button, select')]
    .map((c) => ({ testid: c.dataset.testid, name: c.getAttribute('aria-label'), box: c.getBoundingClientRect().toJSON() })));
}

/** Each of `controls` (as `headerControls` reads them) drawn and within the page's width. */
function onScreen(controls, size) {
  for (const c of controls) assert.ok(c.box.width > 0 && c.box.x >= 0 && c.box.x + c.box.width <= size.width, `${c.testid} on screen: ${JSON.stringify(c.box)}`);
}

/** The header's "Add note" pressed with Enter: the panel's note field has focus, and `text` typed there is a note of the conversation. */
async function noteByKeyboard(page, addNote, panel, text) {
  await addNote.focus();
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.activeElement?.dataset.testid === 'note-input');
  await page.keyboard.type(text);
  await page.keyboard.press('Enter');
  await panel.getByTestId('note').filter({ hasText: text }).waitFor();
}

for (const [label, size] of [['desk', { width: 1366, height: 768 }], ['phone', { width: 390, height: 844 }]]) {
  test(`the open conversation's header adds notes and assigns it (${label})`, () => withShots(`conversation-header-${label}`, async (pages) => {
    const category = `header-${label}`;
    const token = await adminToken(hub);
    const made = await apiCall(hub, 'POST', '/api/admin/categories', { id: category, name: `Header ${label}` }, token);
    assert.equal(made.status, 201, JSON.stringify(made.data));
    const bert = await createAgent(hub, { username: `hbert-${label}`, display_name: `Hugo ${label}`, categories: [category] });
    const annPage = await agentSignedInOn(browser, hub, pages, size, { username: `hanna-${label}`, display_name: `Hanna ${label}`, categories: [category] });
    const [customer] = await openPages(browser, pages, [{ width: 390, height: 844 }]);
    const name = `Ines ${label}`;
    const panel = await joinedChat(customer, annPage, hub, category, name);
    await sendMessage(customer, 'My parcel never came');
    await panel.getByTestId('message').filter({ hasText: 'My parcel never came' }).waitFor();
    const header = panel.getByTestId('chat-conversation-controls');
    const addNote = header.getByRole('button', { name: `Add note: the conversation with ${name}` });

    // Live: "Add note" in the header, on screen; no "Assign" (the panel's "Transfer" hands it on).
    await addNote.waitFor();
    const live = await headerControls(header);
    onScreen(live, size);
    assert.ok(!live.some((c) => c.testid === 'chat-assign'), 'no Assign on a live chat');
    await panel.getByRole('button', { name: `Transfer the chat with ${name}` }).waitFor();
    // By keyboard: the note field, and the note in the conversation.
    await noteByKeyboard(annPage, addNote, panel, 'Parcel 42, lost in transit');
    await expectClean(annPage, `the header of a live chat (${label})`);
    await shot(annPage, `conversation-header-live-${label}`);

    // She leaves: the header now has "Assign" beside "Add note", and a note still goes in.
    await customer.close();
    await panel.getByTestId('chat-ended').filter({ hasText: 'stays open in your list' }).waitFor({ timeout: waitMs(15000) });
    const assign = header.getByRole('button', { name: `Assign: the conversation with ${name}` });
    await assign.waitFor();
    const left = await headerControls(header);
    onScreen(left, size);
    await noteByKeyboard(annPage, addNote, panel, 'Called her back, no answer');
    assert.equal(await panel.getByTestId('note-error').textContent(), '', 'the note was kept');
    await expectClean(annPage, `the header of a chat whose customer left (${label})`);
    await shot(annPage, `conversation-header-left-${label}`);

    // "Assign" by keyboard: the dialog of its category's agents; once assigned, the panel is Hugo's.
    await assign.focus();
    await annPage.keyboard.press('Enter');
    const dialog = annPage.getByRole('dialog', { name: `Assign the conversation with ${name}` });
    await dialog.waitFor();
    const select = dialog.getByLabel('Agent');
    await select.locator('option', { hasText: `Hugo ${label}` }).waitFor({ state: 'attached' });
    await expectClean(annPage, `the header's assign dialog (${label})`);
    await select.selectOption({ label: `Hugo ${label}` });
    await dialog.getByRole('button', { name: 'Assign' }).click();
    await dialog.waitFor({ state: 'hidden' });
    await panel.getByTestId('chat-ended').filter({ hasText: `now with Hugo ${label}` }).waitFor();
    await annPage.waitForFunction(() => document.activeElement?.dataset.testid === 'close-panel');
    assert.equal(await panel.getByTestId('message-input').isEnabled(), false, 'no longer hers to write in');
    await header.waitFor({ state: 'hidden' });
    const all = await apiCall(hub, 'GET', `/api/inbox?view=all&category=${category}`, undefined, token);
    assert.equal(all.data.items.find((i) => i.customer_name === name)?.holder, bert.id, JSON.stringify(all.data));
  }));
}

for (const [label, size] of [['desk', { width: 1366, height: 768 }], ['phone', { width: 390, height: 844 }]]) {
  test(`an agent notes and hands on a conversation whose customer is away (${label})`, () => withShots(`conversation-desk-${label}`, async (pages) => {
    const customer = `Nora ${label}`;
    const left = await apiCall(hub, 'POST', '/api/offline-messages',
      { category: 'general', name: customer, email: 'nora@example.com', text: 'My invoice is wrong' });
    assert.equal(left.status, 201, JSON.stringify(left.data));
    const ann = { username: `anna-${label}`, display_name: `Anna ${label}`, categories: ['general'] };
    const bob = { username: `bert-${label}`, display_name: `Bert ${label}`, categories: ['general'] };
    const annPage = await agentSignedInOn(browser, hub, pages, size, ann);
    const bobPage = await agentSignedInOn(browser, hub, pages, size, bob);

    // Anna takes it from Unassigned: hers now, nobody live in it.
    await annPage.getByRole('button', { name: 'Unassigned' }).click();
    const row = conversationRow(annPage, customer);
    await row.getByRole('button', { name: `Assign to me: ${customer}` }).click();
    await row.waitFor({ state: 'detached' });
    await annPage.getByRole('button', { name: 'Mine' }).click();
    await row.getByRole('button', { name: `Resolve: ${customer}` }).waitFor();

    // More… → Add note: a dialog named by its heading.
    await row.getByTestId('conversation-more').selectOption('note');
    const noteDialog = annPage.getByRole('dialog', { name: `Note on the conversation with ${customer}` });
    await noteDialog.waitFor();
    await expectClean(annPage, `the note dialog (${label})`);
    await shot(annPage, `conversation-desk-note-${label}`);
    // An empty note is refused in the dialog.
    await noteDialog.getByRole('button', { name: 'Add note' }).click();
    await noteDialog.getByRole('alert').filter({ hasText: 'Write the note first' }).waitFor();
    await noteDialog.getByLabel(/Internal note/).fill('Refund approved by finance');
    // The list drawn anew just as the dialog closes (a reload answered between close() and
    // its "close" event, as on a loaded machine): focus still finds the row's "More…".
    await annPage.evaluate((name) => {
      window.addEventListener('close', () => {
        const item = document.querySelector(`[data-testid="conversation-item"][data-customer="${name}"]`);
        const copy = item.cloneNode(true);
        copy.dataset.copy = 'yes';
        item.replaceWith(copy);
      }, { capture: true, once: true });
    }, customer);
    await noteDialog.getByRole('button', { name: 'Add note' }).click();
    await noteDialog.waitFor({ state: 'hidden' });
    // Focus is back on the row's list.
    await annPage.waitForFunction(() => document.activeElement?.dataset.testid === 'conversation-more'
      && document.activeElement.closest('li')?.dataset.copy === 'yes', null, { timeout: waitMs(5000) });
    // The list drawn for real (the copy has no handlers).
    await annPage.getByRole('button', { name: 'Mine' }).click();
    await annPage.locator(`[data-testid="conversation-item"][data-customer="${customer}"]:not([data-copy])`).waitFor();

    // Opened, the conversation shows the note with its lines.
    await row.getByRole('button', { name: `Show the conversation with ${customer}` }).click();
    await annPage.getByTestId('note').filter({ hasText: 'Refund approved by finance' }).waitFor();
    // Shown, it is in "My chats" (one row for it); closed, it is a row of the list again.
    await row.waitFor({ state: 'detached' });
    await annPage.getByTestId('close-panel').click();
    await backToTheList(annPage);

    // More… → Assign to…: the category's other agents.
    await row.getByTestId('conversation-more').selectOption('assign');
    const assignDialog = annPage.getByRole('dialog', { name: `Assign the conversation with ${customer}` });
    await assignDialog.waitFor();
    const select = assignDialog.getByLabel('Agent');
    await select.locator('option', { hasText: `Bert ${label}` }).waitFor({ state: 'attached' });
    assert.equal(await select.locator('option', { hasText: `Anna ${label}` }).count(), 0, 'not to its holder');
    await expectClean(annPage, `the assign dialog (${label})`);
    await shot(annPage, `conversation-desk-assign-${label}`);
    await select.selectOption({ label: `Bert ${label}` });
    await assignDialog.getByRole('button', { name: 'Assign' }).click();
    await assignDialog.waitFor({ state: 'hidden' });
    await row.waitFor({ state: 'detached' });

    // Bert has it in Mine, with his actions, and was told.
    const bobRow = conversationRow(bobPage, customer);
    await bobRow.getByRole('button', { name: `Resolve: ${customer}` }).waitFor();
    await bobPage.locator('#sr-announcer').filter({ hasText: `Anna ${label} assigned you the conversation with ${customer}` }).waitFor();
    // In Anna's "All" view it is named by whose list it is in now.
    await annPage.getByRole('button', { name: 'All' }).click();
    await annPage.locator(`[data-testid="conversation-item"][data-customer="${customer}"]`)
      .getByTestId('conversation-holder').filter({ hasText: `With Bert ${label}` }).waitFor();
    await expectClean(bobPage, `the new holder's list (${label})`);
    await shot(bobPage, `conversation-desk-assigned-${label}`);
  }));
}

for (const [label, size] of [['desk', { width: 1366, height: 768 }], ['phone', { width: 390, height: 844 }]]) {
  test(`an admin assigns a conversation from the archive (${label})`, () => withShots(`archive-assign-${label}`, async (pages) => {
    const customer = `Olga ${label}`;
    const left = await apiCall(hub, 'POST', '/api/offline-messages',
      { category: 'general', name: customer, email: 'olga@example.com', text: 'Still waiting on my parcel' });
    assert.equal(left.status, 201, JSON.stringify(left.data));
    const cara = await createAgent(hub, { username: `cara-${label}`, display_name: `Cara ${label}`, categories: ['general'] });
    const admin = await newPage(browser, size, { bypassCSP: true });
    pages.push(admin);
    await adminSignsIn(admin, hub, 'archive');

    // Opened from the archive: "Assign to…" lists its category's agents.
    await admin.getByTestId('archive-search').click();
    const row = admin.getByTestId('archive-row').filter({ hasText: customer });
    await row.getByTestId('archive-open').click();
    const assign = admin.getByTestId('archive-assign');
    await assign.click();
    const dialog = admin.getByRole('dialog', { name: `Assign the conversation with ${customer}` });
    await dialog.waitFor();
    const select = dialog.getByLabel('Agent');
    await select.locator('option', { hasText: `Cara ${label}` }).waitFor({ state: 'attached' });
    await expectClean(admin, `the archive's assign dialog (${label})`);
    await shot(admin, `archive-assign-${label}`);
    await select.selectOption({ label: `Cara ${label}` });
    await dialog.getByRole('button', { name: 'Assign' }).click();
    await dialog.waitFor({ state: 'hidden' });
    await admin.locator('#sr-announcer').filter({ hasText: `The conversation with ${customer} is now with Cara ${label}` }).waitFor();
    // Focus is back on the button that opened it.
    assert.equal(await admin.evaluate(() => document.activeElement?.dataset.testid), 'archive-assign');
    await expectClean(admin, `the archive after assigning (${label})`);

    // It is in Cara's list.
    const token = await adminToken(hub);
    const all = await apiCall(hub, 'GET', '/api/inbox?view=all', undefined, token);
    const item = all.data.items.find((i) => i.id === left.data.id);
    assert.equal(item?.holder, cara.id, JSON.stringify(all.data));

    // The admin parks it on the customer, then resolves it, from the same view.
    for (const [status, said] of [
      ['pending', 'Now Waiting on customer.'],
      ['snoozed', 'Choose when the snooze ends.'],
      ['resolved', 'Now Resolved.'],
    ]) {
      await admin.getByTestId('archive-set-status').selectOption(status);
      await admin.getByTestId('archive-set-status-button').click();
      await admin.getByTestId('archive-set-status-said').filter({ hasText: said }).waitFor();
    }
    await expectClean(admin, `the archive's status control (${label})`);
    await shot(admin, `archive-status-${label}`);
    const after = await apiCall(hub, 'GET', `/api/conversations/${left.data.id}`, undefined, token);
    assert.equal(after.data.status, 'resolved', JSON.stringify(after.data));
  }));
}
