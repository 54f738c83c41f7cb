// Labels: an admin adds labels on the admin page (name and colour); an agent puts two on a
// live chat from its header, focus staying on "+ Label" between picks (each label's × a
// 24 px target at least), then, the chat over, filters the list by them and takes one off
// from its row, focus staying on the row; both pages pass axe with labels shown, on a desk
// and a phone.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newPage, apiCall, adminToken, adminSignsIn, withShots, shot, hubAndBrowser, startForFile, expectClean, agentChattingWith, conversationRow, backToTheList, panelOf, waitMs } from './helpers.mjs';

let hub, browser;
// A short grace period: a customer who closed the page is gone after 2 s, not 30.
startForFile(() => hubAndBrowser({ RESUME_GRACE_SECS: '2' }), (started) => ({ hub, browser } = started));

/** The labels the agent tests use, made through the API when the admin test did not run first. */
async function ensureLabels() {
  const token = await adminToken(hub);
  for (const [id, name] of [['billing', 'Billing'], ['refund-asked', 'Refund asked']]) {
    const res = await apiCall(hub, 'POST', '/api/admin/labels', { id, name, colour: '#8250df' }, token);
    assert.ok(res.status === 201 || res.status === 409, JSON.stringify(res.data));
  }
}

test('an admin adds labels on the admin page', () => withShots('labels-admin', async (pages) => {
  const admin = await newPage(browser, { width: 1280, height: 800 }, { bypassCSP: true });
  pages.push(admin);
  await adminSignsIn(admin, hub, 'categories');
  for (const name of ['Billing', 'Refund asked']) {
    await admin.getByTestId('label-name').fill(name);
    await admin.getByTestId('label-add').click();
    await admin.locator(`[data-testid="label-row"] input[value="${name}"]`).waitFor();
  }
  // A name that breaks the rule is refused where it was typed.
  await admin.getByTestId('label-name').fill('   ');
  await admin.getByTestId('label-add').click();
  await admin.getByTestId('label-error').filter({ hasText: /\S/ }).waitFor();
  await expectClean(admin, "the admin page");
  await shot(admin, 'labels-admin');
}));

for (const [label, size] of [['desk', { width: 1366, height: 768 }], ['phone', { width: 390, height: 844 }]]) {
  test(`an agent labels a conversation, filters by it and takes it off (${label})`, () => withShots(`labels-${label}`, async (pages) => {
    await ensureLabels();
    const lara = { username: `lara-${label}`, display_name: 'Lara', categories: ['general'] };
    const name = `Pia ${label}`;
    const { agentPage } = await agentChattingWith(browser, hub, pages, size, lara, name, 'I was charged twice');
    const focused = () => agentPage.evaluate(() => `${document.activeElement?.parentElement?.closest('[data-testid]')?.dataset.testid}/${document.activeElement?.dataset.testid}`);

    // From the open chat's header: a label, then (focus still on "+ Label") a second one.
    const header = panelOf(agentPage, name).getByTestId('chat-conversation-controls');
    const add = header.getByTestId('chat-conversation-label-add');
    await add.focus();
    await add.selectOption({ label: 'Billing' });
    await header.locator('[data-testid="chat-conversation-label"][data-label="billing"]').waitFor();
    assert.equal(await focused(), 'chat-conversation-controls/chat-conversation-label-add', 'focus stays on "+ Label"');
    await add.selectOption({ label: 'Refund asked' });
    await header.locator('[data-testid="chat-conversation-label"][data-label="refund-asked"]').waitFor();
    assert.equal(await focused(), 'chat-conversation-label/chat-conversation-label-remove', 'no label left to add: on the last one\'s ×');
    // Each × is a target a finger finds: 24 × 24 px at least.
    // Measured from the header in one step: its controls may be drawn anew between two.
    const boxes = await header.evaluate((h) => [...h.querySelectorAll('[data-testid="chat-conversation-label-remove"]')].map((x) => x.getBoundingClientRect().toJSON()));
    assert.equal(boxes.length, 2, 'a × on each label');
    for (const box of boxes) {
      assert.ok(box.width >= 24 && box.height >= 24, `the × is ${box.width}×${box.height}`);
    }
    await expectClean(agentPage, "the agent console");
    await shot(agentPage, `labels-on-${label}`);
    // Taken off again from the header: focus back on "+ Label".
    await header.getByRole('button', { name: `Remove label Refund asked from ${name}` }).click();
    await header.locator('[data-testid="chat-conversation-label"][data-label="refund-asked"]').waitFor({ state: 'detached' });
    assert.equal(await focused(), 'chat-conversation-controls/chat-conversation-label-add');

    // The chat over, the conversation is a row of the list, labelled; filtered by a label it
    // does not carry, it is not listed; by its own, it is.
    await header.getByRole('button', { name: `Resolve: the conversation with ${name}` }).click();
    await header.waitFor({ state: 'hidden' });
    await backToTheList(agentPage);
    await agentPage.getByTestId('conversation-filter').selectOption('resolved');
    const row = conversationRow(agentPage, name);
    await row.locator('[data-testid="conversation-label"][data-label="billing"]').waitFor();
    await agentPage.getByTestId('conversation-label-filter').selectOption({ label: 'Refund asked' });
    await row.waitFor({ state: 'detached' });
    await agentPage.getByTestId('conversation-label-filter').selectOption({ label: 'Billing' });
    await row.waitFor();
    await agentPage.getByTestId('conversation-label-filter').selectOption('');

    // The agent's past conversations filter by it too, and show it on the row.
    const archiveLabel = agentPage.getByTestId('archive-label');
    await archiveLabel.locator('option', { hasText: 'Billing' }).waitFor({ state: 'attached' });
    await archiveLabel.selectOption({ label: 'Billing' });
    await agentPage.locator('[data-testid="archive-row"]', { hasText: name }).getByTestId('archive-labels').filter({ hasText: 'Billing' }).waitFor();

    await row.getByRole('button', { name: `Remove label Billing from ${name}` }).click();
    await row.locator('[data-testid="conversation-label"][data-label="billing"]').waitFor({ state: 'detached' });
    // Focus stays on the row: its "+ Label", offering Billing again.
    assert.equal(await agentPage.evaluate(() => document.activeElement?.dataset.testid), 'conversation-label-add');
    assert.equal(await agentPage.evaluate(() => document.activeElement?.closest('[data-customer]')?.dataset.customer), name);
  }));
}

test('a label put on from the header of a chat whose customer left shows at once, whatever the list shows', () => withShots('labels-customer-left', async (pages) => {
  await ensureLabels();
  const lara = { username: 'lara-left', display_name: 'Lara', categories: ['general'] };
  const name = 'Pia left';
  const { agentPage, customer } = await agentChattingWith(browser, hub, pages, { width: 1366, height: 768 }, lara, name, 'I was charged twice');
  const panel = panelOf(agentPage, name);
  // She closes the page and is gone: the panel stays, its header still sets the labels.
  await customer.close();
  await panel.getByTestId('chat-ended').filter({ hasText: 'stays open in your list' }).waitFor({ timeout: waitMs(15000) });
  // The list shows a view without her conversation (and no chat is live).
  await agentPage.getByTestId('conversation-view-unassigned').click();
  const header = panel.getByTestId('chat-conversation-controls');
  const add = header.getByTestId('chat-conversation-label-add');
  await add.selectOption({ label: 'Billing' });
  await header.locator('[data-testid="chat-conversation-label"][data-label="billing"]').waitFor();
  assert.equal(await add.locator('option', { hasText: 'Billing' }).count(), 0, '"+ Label" no longer offers it');
  await header.getByRole('button', { name: `Remove label Billing from ${name}` }).click();
  await header.locator('[data-testid="chat-conversation-label"][data-label="billing"]').waitFor({ state: 'detached' });
}));
