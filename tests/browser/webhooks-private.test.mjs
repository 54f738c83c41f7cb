// Private addresses on the admin page's Webhooks, under "Advanced": with
// WEBHOOK_ALLOW_PRIVATE unset the admins decide, off until one allows them. Off, a loopback
// address is refused at the address's field, without sending the admin elsewhere (nor
// naming the server's setting). Being one switch for the whole server, a change is asked
// for and then confirmed: asking alone, or "Keep it as it is", changes nothing. Allowed,
// the status says who allowed it, the same address is registered, and the choice is still
// shown after a reload. Refused again (confirmed too), the address is refused again.
// (Locked by the server's setting: nothing to change, in webhooks-admin.test.mjs.)

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newPage, adminSignsIn, withShots, hubAndBrowser, startForFile, apiCall, adminToken, shot } from './helpers.mjs';

let hub, browser;
startForFile(() => hubAndBrowser(), (started) => ({ hub, browser } = started));

const allowedNow = async () => (await apiCall(hub, 'GET', '/api/admin/webhooks/private-addresses', undefined, await adminToken(hub))).data.allowed;

test('an admin allows private addresses under Advanced, confirming, and the form follows it', () => withShots('webhooks-private', async (pages) => {
  const admin = await newPage(browser, { width: 1280, height: 800 });
  pages.push(admin);
  await adminSignsIn(admin, hub, 'webhooks');
  const status = admin.getByTestId('hook-private-status');
  const change = admin.getByTestId('hook-private-change');
  await status.filter({ hasText: /Refused/ }).waitFor({ state: 'attached' });
  // Folded away under Advanced, below the endpoints.
  assert.equal(await change.isVisible(), false);

  // Off: a loopback address (the hub's own) is refused at its field, pointing nowhere else.
  const url = `${hub.url}/private-hook`;
  await admin.getByTestId('hook-url').fill(url);
  await admin.getByTestId('hook-create').click();
  const refusal = admin.getByTestId('hook-url-error').filter({ hasText: /private/ });
  await refusal.waitFor();
  const said = await refusal.textContent();
  assert.doesNotMatch(said, /admin page|WEBHOOK_ALLOW_PRIVATE/, said);
  assert.match(said, /^The address's host resolves to 127\.0\.0\.1/);

  // Asking is not changing: "Keep it as it is" leaves it off.
  await admin.getByTestId('hook-advanced').locator('summary').click();
  await change.filter({ hasText: 'Allow private addresses…' }).click();
  await admin.getByTestId('hook-private-confirm').waitFor();
  assert.equal(await admin.evaluate(() => document.activeElement?.dataset.testid), 'hook-private-yes');
  await shot(admin, 'webhooks-private-confirm');
  assert.equal(await allowedNow(), false, 'asking alone changes nothing');
  await admin.getByTestId('hook-private-no').click();
  assert.equal(await admin.getByTestId('hook-private-confirm').isVisible(), false);
  assert.equal(await allowedNow(), false);

  // Confirmed: the status names who allowed it; the address is registered.
  await change.click();
  await admin.getByTestId('hook-private-yes').filter({ hasText: 'Yes, allow them' }).click();
  await status.filter({ hasText: /Allowed.*Changed by admin/ }).waitFor();
  assert.equal(await allowedNow(), true);
  await admin.getByTestId('hook-create').click();
  await admin.getByTestId('hook-secret').filter({ hasText: /\S/ }).waitFor();
  await admin.locator(`[data-testid="hook-row"][data-url="${url}"]`).waitFor();

  // Kept: a reload shows it on.
  await admin.reload();
  await status.filter({ hasText: /Allowed/ }).waitFor({ state: 'attached' });

  // Off again, confirmed too: refused again.
  await admin.getByTestId('hook-advanced').locator('summary').click();
  await change.filter({ hasText: 'Refuse private addresses…' }).click();
  await admin.getByTestId('hook-private-yes').filter({ hasText: 'Yes, refuse them' }).click();
  await status.filter({ hasText: /Refused.*Changed by admin/ }).waitFor();
  await admin.getByTestId('hook-url').fill(`${hub.url}/another-hook`);
  await admin.getByTestId('hook-create').click();
  await admin.getByTestId('hook-url-error').filter({ hasText: /private/ }).waitFor();
}));
