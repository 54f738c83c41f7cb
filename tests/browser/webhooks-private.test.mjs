// Private addresses on the admin page's Webhooks: with WEBHOOK_ALLOW_PRIVATE unset the
// admins decide, off until one turns it on. Off, a loopback address is refused by the
// form's message; the admin ticks "Allow private addresses" and the status says who allowed
// it; the same address is then registered, and the choice is still shown after a reload.
// Unticked again, the address is refused again. (Locked by the server's setting: the
// toggle is shown ticked and disabled in webhooks-admin.test.mjs.)

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newPage, adminSignsIn, withShots, hubAndBrowser, startForFile } from './helpers.mjs';

let hub, browser;
startForFile(() => hubAndBrowser(), (started) => ({ hub, browser } = started));

test('an admin allows private addresses with the toggle, and the form follows it', () => withShots('webhooks-private', async (pages) => {
  const admin = await newPage(browser, { width: 1280, height: 800 });
  pages.push(admin);
  await adminSignsIn(admin, hub, 'webhooks');
  const toggle = admin.getByTestId('hook-private-toggle');
  const status = admin.getByTestId('hook-private-status');
  await status.filter({ hasText: /Refused/ }).waitFor();
  assert.equal(await toggle.isChecked(), false);
  assert.equal(await toggle.isEnabled(), true);

  // Off: a loopback address (the hub's own) is refused by the form's message.
  const url = `${hub.url}/private-hook`;
  await admin.getByTestId('hook-url').fill(url);
  await admin.getByTestId('hook-create').click();
  await admin.getByTestId('hook-error').filter({ hasText: /private/ }).waitFor();

  // On: the status names who allowed it; the address is registered.
  await toggle.check();
  await status.filter({ hasText: /Allowed.*Changed by admin/ }).waitFor();
  await admin.getByTestId('hook-create').click();
  await admin.getByTestId('hook-secret').filter({ hasText: /\S/ }).waitFor();
  await admin.locator(`[data-testid="hook-row"][data-url="${url}"]`).waitFor();

  // Kept: a reload shows it on.
  await admin.reload();
  await status.filter({ hasText: /Allowed/ }).waitFor();
  assert.equal(await toggle.isChecked(), true);

  // Off again: refused again.
  await toggle.uncheck();
  await status.filter({ hasText: /Refused.*Changed by admin/ }).waitFor();
  await admin.getByTestId('hook-url').fill(`${hub.url}/another-hook`);
  await admin.getByTestId('hook-create').click();
  await admin.getByTestId('hook-error').filter({ hasText: /private/ }).waitFor();
}));
