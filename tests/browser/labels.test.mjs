// Labels: an admin adds labels on the admin page (name and colour); an agent puts one on a
// conversation from their list, filters the list by it and takes it off; both pages pass
// axe with labels shown, on a desk and a phone.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newPage, apiCall, adminToken, adminSignsIn, withShots, shot, hubAndBrowser, startForFile, expectClean, agentChattingWith, conversationRow, backToTheList } from './helpers.mjs';

let hub, browser;
startForFile(() => hubAndBrowser(), (started) => ({ hub, browser } = started));

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
    const { agentPage, customer } = await agentChattingWith(browser, hub, pages, size, lara, name, 'I was charged twice');

    await backToTheList(agentPage);
    const row = conversationRow(agentPage, name);
    await row.getByTestId('conversation-last').filter({ hasText: 'I was charged twice' }).waitFor();
    await row.getByTestId('conversation-label-add').selectOption({ label: 'Billing' });
    await row.locator('[data-testid="conversation-label"][data-label="billing"]').waitFor();
    await expectClean(agentPage, "the agent console");
    await shot(agentPage, `labels-on-${label}`);

    // Filtered by another label, it is not listed; by its own, it is.
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
    await row.locator('[data-testid="conversation-label"]').first().waitFor({ state: 'detached' });
  }));
}
