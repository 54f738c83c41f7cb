// API tokens on the admin page: an admin creates a read token (a name and scopes), sees
// its secret once with a copy button, the token reads the archive and is refused an admin
// operation, its use shows in the list, and revoking it (pressed twice) refuses it at
// once. The form checks a name (and, with the Bot scope only, the bot's name) before
// sending, each error at its field.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newPage, apiCall, adminSignsIn, adminToken, expectClean, withShots, shot, hubAndBrowser, startForFile } from './helpers.mjs';

let hub, browser;
startForFile(() => hubAndBrowser(), (started) => ({ hub, browser } = started));

test('an admin creates, uses and revokes an API token', () => withShots('api-tokens', async (pages) => {
  const admin = await newPage(browser, { width: 1280, height: 800 });
  pages.push(admin);
  await adminSignsIn(admin, hub, 'tokens');
  await admin.getByTestId('tokens').waitFor();

  // Checked in the page before any request, each error at its field: a name is needed.
  const posted = [];
  admin.on('request', (r) => { if (r.method() === 'POST' && r.url().endsWith('/api/admin/api-tokens')) posted.push(r.url()); });
  await admin.getByTestId('token-create').click();
  await admin.getByTestId('token-name-error').filter({ hasText: 'Please name the token' }).waitFor();
  assert.equal(await admin.getByTestId('token-name').getAttribute('aria-invalid'), 'true');
  assert.match(await admin.getByTestId('token-name').getAttribute('aria-describedby'), /\bt-name-error\b/);
  assert.equal(await admin.evaluate(() => document.activeElement?.dataset.testid), 'token-name');
  assert.equal(await admin.getByTestId('token-error').textContent(), '', 'nothing under the form');

  // The bot's name is asked for with the Bot scope only, and needed then.
  assert.equal(await admin.getByTestId('token-bot-name').isVisible(), false);
  await admin.getByTestId('token-name').fill('FAQ bot');
  await admin.getByTestId('token-scope-bot').check();
  assert.equal(await admin.getByTestId('token-bot-name').isVisible(), true);
  await admin.getByTestId('token-create').click();
  await admin.getByTestId('token-bot-name-error').filter({ hasText: "Please enter the bot's name" }).waitFor();
  assert.equal(await admin.getByTestId('token-name').getAttribute('aria-invalid'), null, 'the name is fine now');
  assert.equal(await admin.evaluate(() => document.activeElement?.dataset.testid), 'token-bot-name');
  assert.deepEqual(posted, [], 'no round trip for what the page can check');
  await admin.getByTestId('token-scope-bot').uncheck();
  assert.equal(await admin.getByTestId('token-bot-name').isVisible(), false);

  await admin.getByTestId('token-name').fill('CRM sync');
  await admin.getByTestId('token-create').click();
  // The secret shows once the hub has answered (the element is there, empty, before).
  await admin.getByTestId('token-secret').filter({ hasText: /sbt_/ }).waitFor();
  const secret = (await admin.getByTestId('token-secret').textContent()).trim();
  assert.match(secret, /^sbt_[A-Za-z0-9_-]{43}$/);
  await admin.getByTestId('token-copy').click();
  await admin.getByTestId('token-copy-status').filter({ hasText: /Copied|Selected/ }).waitFor();
  const row = admin.locator('[data-testid="token-row"][data-name="CRM sync"]');
  await row.filter({ hasText: 'Read' }).waitFor();
  assert.match(await row.textContent(), new RegExp(secret.slice(0, 8)));
  assert.doesNotMatch(await row.textContent(), new RegExp(secret.slice(8)), 'the list never shows the secret');
  await shot(admin, 'api-tokens-created');

  // The token reads the archive and is refused an admin operation.
  const reads = await apiCall(hub, 'GET', '/api/conversations', undefined, secret);
  assert.equal(reads.status, 200, JSON.stringify(reads.data));
  const administers = await apiCall(hub, 'GET', '/api/admin/agents', undefined, secret);
  assert.equal(administers.status, 403);
  assert.equal(administers.data.error.code, 'missing_scope');

  // Its use shows once the list is read again (reload the view).
  await admin.reload();
  await row.getByTestId('token-last-used').filter({ hasText: /\d/ }).waitFor();

  // Revoking asks once more, then the token is refused.
  await row.getByTestId('token-revoke').click();
  await row.getByTestId('token-revoke').filter({ hasText: 'Confirm revoke' }).waitFor();
  await row.getByTestId('token-revoke').click();
  await row.getByTestId('token-revoked').waitFor();
  const refused = await apiCall(hub, 'GET', '/api/conversations', undefined, secret);
  assert.equal(refused.status, 401);
  assert.equal(refused.data.error.code, 'invalid_token');
  await shot(admin, 'api-tokens-revoked');
}));

test('on a phone each token is a card: its name in view beside its Revoke button', () => withShots('api-tokens-phone', async (pages) => {
  const made = await apiCall(hub, 'POST', '/api/admin/api-tokens', { name: 'Phone CRM', scopes: ['read'] }, await adminToken(hub));
  assert.equal(made.status, 201, JSON.stringify(made.data));
  const admin = await newPage(browser, { width: 390, height: 844 }, { bypassCSP: true });
  pages.push(admin);
  await adminSignsIn(admin, hub, 'tokens');
  const row = admin.locator('[data-testid="token-row"][data-name="Phone CRM"]');
  const revoke = row.getByTestId('token-revoke');
  await revoke.waitFor();
  const width = 390;
  for (const [what, box] of [['the name', await row.locator('td').first().boundingBox()], ['Revoke', await revoke.boundingBox()]]) {
    assert.ok(box && box.x >= 0 && box.x + box.width <= width, `${what} is off screen: ${JSON.stringify(box)}`);
  }
  await expectClean(admin, 'the tokens view on a phone');
  await shot(admin, 'api-tokens-phone');
}));
