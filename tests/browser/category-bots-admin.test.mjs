// A category's bot on the admin page: the Categories view offers the names the desk's
// live bot tokens act as (and "no bot"); choosing one for a category saves it (the API
// then names that bot for the category, and the row says so after a reload), and "no bot"
// takes it off again. The view passes axe and fits on a desk and a phone. A bot's webhook
// URL is set there too (its secret shown once; a bad URL said next to it) and removed. The
// hub lets URLs reach loopback (WEBHOOK_ALLOW_PRIVATE) so the walk can use its own.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newPage, apiCall, adminToken, adminSignsIn, withShots, shot, hubAndBrowser, startForFile, expectClean } from './helpers.mjs';

let hub, browser;
startForFile(() => hubAndBrowser({ WEBHOOK_ALLOW_PRIVATE: 'true' }), (started) => ({ hub, browser } = started));

/** The entries the admin API lists at `path`. */
async function listed(token, path) {
  const res = await apiCall(hub, 'GET', path, undefined, token);
  assert.equal(res.status, 200, JSON.stringify(res.data));
  return res.data;
}

/**
 * An admin's token after making a bot token `name` for `bot`, and the admin's page open
 * at the categories.
 */
async function adminWithBot(pages, name, bot) {
  const token = await adminToken(hub);
  const made = await apiCall(hub, 'POST', '/api/admin/api-tokens', { name, scopes: ['bot'], bot }, token);
  assert.equal(made.status, 201, JSON.stringify(made.data));
  const admin = await newPage(browser, { width: 1280, height: 800 }, { bypassCSP: true });
  pages.push(admin);
  await adminSignsIn(admin, hub, 'categories');
  return { token, admin };
}

/** The bot the API names for `category` (null for none). */
async function botOf(token, category) {
  const { categories } = await listed(token, '/api/admin/category-bots');
  return categories.find((c) => c.category === category)?.bot ?? null;
}

test("an admin sets and clears a category's bot from the page", () => withShots('category-bots-admin', async (pages) => {
  const { token, admin } = await adminWithBot(pages, 'FAQ bot', 'Faq');
  const row = admin.locator('[data-testid="category-bot-row"][data-id="general"]');
  await row.waitFor();
  assert.equal(await row.getAttribute('data-bot'), '');
  // The select is labelled by the category's name, and offers the token's bot and none.
  const select = admin.getByLabel('General', { exact: true }).and(admin.getByTestId('category-bot'));
  assert.deepEqual(await select.locator('option').allTextContents(), ['No bot: straight to the line', 'Faq']);

  // Chosen with the keyboard.
  await select.focus();
  await select.press('ArrowDown');
  await row.getByTestId('category-bot-status').filter({ hasText: 'Saved: Faq answers first' }).waitFor();
  assert.equal(await botOf(token, 'general'), 'Faq');
  await expectClean(admin, "the admin page");
  await shot(admin, 'category-bots-set');

  // After a reload the row still says which bot the category has.
  await admin.reload();
  // Faq has a token but never connected: the row says so.
  await row.getByTestId('category-bot-status').filter({ hasText: 'Bot: Faq — not connected' }).waitFor();
  assert.equal(await row.getAttribute('data-bot'), 'Faq');

  // On a phone the view fits and passes axe.
  await admin.setViewportSize({ width: 390, height: 844 });
  await row.scrollIntoViewIfNeeded();
  const overflow = await admin.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px`);
  await expectClean(admin, "the admin page");
  await shot(admin, 'category-bots-phone');

  // "No bot" takes it off.
  await row.getByTestId('category-bot').selectOption('');
  await row.getByTestId('category-bot-status').filter({ hasText: 'Saved: no bot' }).waitFor();
  assert.equal(await botOf(token, 'general'), null);
}));

/** The URL the API has for bot `bot` (null for none). */
async function hookOf(token, bot) {
  return (await listed(token, '/api/admin/bot-hooks')).find((h) => h.bot === bot)?.url ?? null;
}

test("an admin sets and removes a bot's webhook URL from the page", () => withShots('bot-hooks-admin', async (pages) => {
  const { token, admin } = await adminWithBot(pages, 'Orders bot', 'Orders');
  const row = admin.locator('[data-testid="bot-hook-row"][data-bot="Orders"]');
  await row.waitFor();
  const url = admin.getByLabel('Orders', { exact: true }).and(admin.getByTestId('bot-hook-url'));

  // A URL that is not http(s) is refused, said next to it.
  await url.fill('ftp://example.com/bot');
  await row.getByTestId('bot-hook-save').click();
  await row.getByTestId('bot-hook-error').filter({ hasText: 'http or https' }).waitFor();
  assert.equal(await hookOf(token, 'Orders'), null);

  // Set: the secret is shown once, the API has the URL.
  const wanted = `${hub.url}/walked-bot`;
  await url.fill(wanted);
  await row.getByTestId('bot-hook-save').click();
  await row.getByTestId('bot-hook-status').filter({ hasText: 'Saved: called by webhook' }).waitFor();
  assert.match(await admin.getByTestId('bot-hook-secret').textContent(), /^whsec_[0-9a-f]{64}$/);
  // Shown this once: the focus goes to its copy button, described by the shown-once words.
  const focus = await admin.evaluate(() => ({
    testid: document.activeElement.dataset.testid,
    described: document.getElementById(document.activeElement.getAttribute('aria-describedby') || '')?.textContent ?? '',
  }));
  assert.equal(focus.testid, 'bot-hook-copy');
  assert.match(focus.described, /shown this once/);
  assert.equal(await row.getByTestId('bot-hook-error').textContent(), '');
  assert.equal(await hookOf(token, 'Orders'), wanted);
  await expectClean(admin, "the admin page");
  await shot(admin, 'bot-hook-set');

  // Removed: the bot connects to its socket again.
  await row.getByTestId('bot-hook-remove').click();
  await row.getByTestId('bot-hook-status').filter({ hasText: 'Removed' }).waitFor();
  assert.equal(await hookOf(token, 'Orders'), null);
}));
