// The keyboard's place on the Webhooks view when the list is drawn again under it: "Disable"
// leaves the focus on the same endpoint's button, now "Enable" (and back); "Log" takes it to
// the delivery log's heading, which names the endpoint. At desk and phone sizes (endpoints on
// loopback, the hub allowing private addresses).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newPage, withShots, hubAndBrowser, startForFile, adminSignsIn, adminToken, apiCall } from './helpers.mjs';

let hub, browser;
startForFile(() => hubAndBrowser({ WEBHOOK_ALLOW_PRIVATE: 'true' }), (started) => ({ hub, browser } = started));

/** The focused element: its test id, text and the endpoint of the row it is in. */
const focused = (page) => page.evaluate(() => {
  const a = document.activeElement;
  return { testid: a.dataset.testid || a.id, text: a.textContent.trim(), url: a.closest('tr')?.dataset.url };
});

for (const [label, size] of [['desk', { width: 1366, height: 768 }], ['phone', { width: 390, height: 844 }]]) {
  test(`disabling, enabling and opening the log keep the keyboard's place (${label})`, () => withShots(`webhook-row-focus-${label}`, async (pages) => {
    const token = await adminToken(hub);
    const url = `http://127.0.0.1:9/focus-${label}`;
    const made = await apiCall(hub, 'POST', '/api/admin/webhooks', { url, events: ['conversation.created'] }, token);
    assert.equal(made.status, 201, JSON.stringify(made.data));
    const page = await newPage(browser, size);
    pages.push(page);
    await adminSignsIn(page, hub, 'webhooks');
    const row = page.locator(`[data-testid="hook-row"][data-url="${url}"]`);
    await row.getByTestId('hook-toggle').filter({ hasText: 'Disable' }).click();
    await row.getByTestId('hook-toggle').filter({ hasText: 'Enable' }).waitFor();
    assert.deepEqual(await focused(page), { testid: 'hook-toggle', text: 'Enable', url });
    await page.keyboard.press('Enter');
    await row.getByTestId('hook-toggle').filter({ hasText: 'Disable' }).waitFor();
    assert.deepEqual(await focused(page), { testid: 'hook-toggle', text: 'Disable', url });
    await row.getByTestId('hook-open-log').click();
    await page.getByTestId('hook-log-empty').waitFor();
    const now = await focused(page);
    assert.equal(now.testid, 'hook-log-title');
    assert.match(now.text, new RegExp(`focus-${label}`));
  }));
}
