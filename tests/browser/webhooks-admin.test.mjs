// Webhooks on the admin page: an admin registers an endpoint pointing at a receiver this
// test runs on loopback (reachable because the hub runs with WEBHOOK_ALLOW_PRIVATE), sees
// its secret once with a copy button, an event's delivery in the endpoint's log (status,
// HTTP code, latency, the receiver's answer), sends it again and the receiver gets the same
// event a second time; disabling and enabling show in the list, and deleting asks once
// more. An empty address is said at the field before any request, one the server refuses
// at the field too, in sentence case; the form names the endpoint it edits; private
// addresses (under Advanced) are shown allowed with nothing to change (the server's
// setting decides). The view passes axe on a desk and
// a phone. An endpoint the hub disabled after sustained failure is named above the list,
// with the hub's reason in its row, and counted on the view's link (the list's answer is
// rewritten to say so: the hub disables one only after about a day of failures).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createRequire } from 'node:module';
import { newPage, apiCall, adminToken, adminSignsIn, withShots, shot, hubAndBrowser, startForFile } from './helpers.mjs';

const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

let hub, browser;
startForFile(() => hubAndBrowser({ WEBHOOK_ALLOW_PRIVATE: 'true' }), (started) => ({ hub, browser } = started));

/** A real HTTP receiver on 127.0.0.1: its URL, what it got, and how to stop it. */
async function receiver() {
  const got = [];
  let waiting = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      got.push({ headers: req.headers, body: JSON.parse(body) });
      res.writeHead(200, { 'content-type': 'text/plain' }).end('received, thanks');
      waiting = waiting.filter(([n, resolve]) => (got.length >= n ? (resolve(), false) : true));
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/hook`,
    got,
    /** Resolves once `n` requests came. */
    until: (n) => new Promise((resolve) => (got.length >= n ? resolve() : waiting.push([n, resolve]))),
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

async function seriousAxe(page) {
  await page.addScriptTag({ path: AXE });
  return page.evaluate(async () => (await window.axe.run(document, { resultTypes: ['violations'] })).violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`));
}

test('an admin registers a webhook, reads its log and sends a delivery again', () => withShots('webhooks-admin', async (pages) => {
  const hook = await receiver();
  try {
    const admin = await newPage(browser, { width: 1280, height: 800 }, { bypassCSP: true });
    pages.push(admin);
    await adminSignsIn(admin, hub, 'webhooks');
    await admin.getByTestId('webhooks').waitFor();
    // The server's WEBHOOK_ALLOW_PRIVATE=true decides: shown under Advanced, nothing to change.
    await admin.getByTestId('hook-private-status').filter({ hasText: /WEBHOOK_ALLOW_PRIVATE=true/ }).waitFor({ state: 'attached' });
    await admin.getByTestId('hook-advanced').locator('summary').click();
    await admin.getByTestId('hook-private-status').waitFor();
    assert.equal(await admin.getByTestId('hook-private-change').isVisible(), false);

    // No address: said at the field before any request.
    const posted = [];
    admin.on('request', (r) => { if (r.method() === 'POST' && r.url().endsWith('/api/admin/webhooks')) posted.push(r.url()); });
    await admin.getByTestId('hook-create').click();
    await admin.getByTestId('hook-url-error').filter({ hasText: /^Please enter the address to send to/ }).waitFor();
    assert.equal(await admin.getByTestId('hook-url').getAttribute('aria-invalid'), 'true');
    assert.equal(await admin.evaluate(() => document.activeElement?.dataset.testid), 'hook-url');
    assert.deepEqual(posted, []);

    // An address that is no http(s) URL: the server's message at the field, as a sentence.
    await admin.getByTestId('hook-url').fill('ftp://example.com/hook');
    await admin.getByTestId('hook-create').click();
    await admin.getByTestId('hook-url-error').filter({ hasText: /^Only http or https addresses can be sent to, not ftp/ }).waitFor();
    assert.equal(await admin.getByTestId('hook-error').textContent(), '', 'nothing under the form');

    await admin.getByTestId('hook-url').fill(hook.url);
    await admin.getByTestId('hook-event-conversation.created').uncheck();
    await admin.getByTestId('hook-event-offline_message.created').check();
    await admin.getByTestId('hook-create').click();
    await admin.getByTestId('hook-secret').filter({ hasText: /\S/ }).waitFor();
    const secret = (await admin.getByTestId('hook-secret').textContent()).trim();
    assert.ok(secret.length >= 32, secret);
    await admin.getByTestId('hook-copy').click();
    await admin.getByTestId('hook-copy-status').filter({ hasText: /Copied|Selected/ }).waitFor();
    const row = admin.locator(`[data-testid="hook-row"][data-url="${hook.url}"]`);
    await row.filter({ hasText: 'Offline message' }).getByTestId('hook-state').filter({ hasText: 'Enabled' }).waitFor();
    assert.doesNotMatch(await row.textContent(), new RegExp(secret), 'the list never shows the secret');

    // An event: a customer leaves an offline message; the receiver gets it.
    const left = await apiCall(hub, 'POST', '/api/offline-messages',
      { category: 'general', name: 'Olga', email: 'olga@example.com', text: 'Call me back' });
    assert.equal(left.status, 201, JSON.stringify(left.data));
    await hook.until(1);
    assert.equal(hook.got[0].body.type, 'offline_message.created');
    assert.equal(hook.got[0].body.data.offline_message_id, left.data.id);

    // The log shows it delivered, with the receiver's answer.
    await row.getByTestId('hook-open-log').click();
    const entry = admin.getByTestId('hook-log-row').first();
    await entry.getByTestId('hook-log-status').filter({ hasText: 'Delivered' }).waitFor();
    assert.match(await entry.textContent(), /200/);
    assert.match(await entry.textContent(), /\d+ ms/);
    assert.match(await entry.textContent(), /received, thanks/);
    await row.getByTestId('hook-last').filter({ hasText: /Delivered.*\(200\)/ }).waitFor();
    assert.deepEqual(await seriousAxe(admin), []);
    await shot(admin, 'webhooks-admin-log');

    // Send again: the same event reaches the receiver a second time, and the log has both.
    await entry.getByTestId('hook-send-again').click();
    await hook.until(2);
    assert.equal(hook.got[1].body.id, hook.got[0].body.id, 'the same event');
    assert.deepEqual(hook.got[1].body, hook.got[0].body);
    await admin.getByTestId('hook-log-row').nth(1).waitFor();
    await admin.getByTestId('hook-log-refresh').click();
    await admin.getByTestId('hook-log-row').first().getByTestId('hook-log-status').filter({ hasText: 'Delivered' }).waitFor();

    // Disable, then enable.
    await row.getByTestId('hook-toggle').click();
    await row.getByTestId('hook-state').filter({ hasText: 'Disabled' }).waitFor();
    await row.getByTestId('hook-toggle').filter({ hasText: 'Enable' }).click();
    await row.getByTestId('hook-state').filter({ hasText: 'Enabled' }).waitFor();

    // Edit: another address and other events, the same endpoint (no new secret). A bad
    // address is refused in the form and changes nothing; Cancel leaves it as it was.
    const other = await receiver();
    try {
      assert.equal(await admin.getByTestId('hook-form-title').textContent(), 'Add an endpoint');
      await row.getByTestId('hook-edit').click();
      assert.equal(await admin.getByTestId('hook-form-title').textContent(), `Edit the endpoint ${hook.url}`);
      assert.equal(await admin.getByTestId('hook-url').inputValue(), hook.url);
      assert.equal(await admin.getByTestId('hook-event-offline_message.created').isChecked(), true);
      await admin.getByTestId('hook-url').fill('ftp://example.com/hook');
      await admin.getByTestId('hook-create').filter({ hasText: 'Save changes' }).click();
      await admin.getByTestId('hook-url-error').filter({ hasText: /\S/ }).waitFor();
      await admin.getByTestId('hook-url').fill(other.url);
      await admin.getByTestId('hook-event-rating.given').check();
      await admin.getByTestId('hook-create').click();
      const moved = admin.locator(`[data-testid="hook-row"][data-url="${other.url}"]`);
      await moved.filter({ hasText: 'Rating given' }).waitFor();
      assert.equal(await admin.getByTestId('hook-row').count(), 1, 'the same endpoint, edited');
      assert.equal(await admin.getByTestId('hook-create').textContent(), 'Add endpoint');
      assert.equal(await admin.getByTestId('hook-secret').textContent(), secret, 'no new secret');
      // The next event goes to the new address.
      const again = await apiCall(hub, 'POST', '/api/offline-messages',
        { category: 'general', name: 'Olga', email: 'olga@example.com', text: 'Still waiting' });
      assert.equal(again.status, 201, JSON.stringify(again.data));
      await other.until(1);
      assert.equal(other.got[0].body.data.offline_message_id, again.data.id);
      assert.equal(hook.got.length, 2, 'nothing more to the old address');
      // Cancel puts the form back to adding one.
      await moved.getByTestId('hook-edit').click();
      await admin.getByTestId('hook-cancel-edit').click();
      assert.equal(await admin.getByTestId('hook-url').inputValue(), '');
      assert.equal(await admin.getByTestId('hook-cancel-edit').isVisible(), false);
    } finally {
      await other.close();
    }
    const edited = admin.locator(`[data-testid="hook-row"][data-url="${other.url}"]`);

    // On a phone the view fits and passes axe.
    await admin.setViewportSize({ width: 390, height: 844 });
    const overflow = await admin.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px`);
    assert.deepEqual(await seriousAxe(admin), []);
    await shot(admin, 'webhooks-admin-phone');

    // Deleting asks once more.
    await admin.setViewportSize({ width: 1280, height: 800 });
    await edited.getByTestId('hook-delete').click();
    await edited.getByTestId('hook-delete').filter({ hasText: 'Confirm delete' }).waitFor();
    await edited.getByTestId('hook-delete').click();
    await edited.waitFor({ state: 'detached' });
    await admin.getByTestId('hook-empty').waitFor();
  } finally {
    await hook.close();
  }
}));

test('an endpoint the hub disabled after failing is shown to the admin', () => withShots('webhooks-admin-disabled', async (pages) => {
  const token = await adminToken(hub);
  const url = 'http://127.0.0.1:9/failing-hook';
  const made = await apiCall(hub, 'POST', '/api/admin/webhooks', { url, events: ['message.created'] }, token);
  assert.equal(made.status, 201, JSON.stringify(made.data));
  const reason = `delivery 7-${made.data.id} failed 15 times`;
  const admin = await newPage(browser, { width: 1280, height: 800 }, { bypassCSP: true });
  pages.push(admin);
  // The hub's own list, with this endpoint as the deliverer leaves it after its 15th failure.
  await admin.route('**/api/admin/webhooks', async (route) => {
    const real = await route.fetch();
    const list = (await real.json()).map((h) => (h.id === made.data.id ? { ...h, enabled: false, disabled_reason: reason } : h));
    await route.fulfill({ response: real, json: list });
  });
  await adminSignsIn(admin, hub, 'dashboard');
  // Told on whatever view is open: the link to the view counts it.
  await admin.getByTestId('hook-nav-count').filter({ hasText: '1' }).waitFor();
  await admin.locator('#nav a[href="#webhooks"]').click();
  await admin.getByTestId('hook-disabled').filter({ hasText: url }).waitFor();
  const row = admin.locator(`[data-testid="hook-row"][data-url="${url}"]`);
  await row.getByTestId('hook-state').filter({ hasText: reason }).waitFor();
  await row.getByTestId('hook-toggle').filter({ hasText: 'Enable' }).waitFor();
  assert.deepEqual(await seriousAxe(admin), []);
  await shot(admin, 'webhooks-admin-disabled');
  await apiCall(hub, 'DELETE', `/api/admin/webhooks/${made.data.id}`, undefined, token);
}));
