// A secret shown once (an API token's, a webhook endpoint's) is where the admin is taken
// when it appears: focus moves from the form's button to its copy button, which a screen
// reader announces with the words that it is shown this once. At desk and phone sizes (the
// endpoint on loopback, the hub allowing private addresses).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newPage, withShots, hubAndBrowser, startForFile, adminSignsIn } from './helpers.mjs';

let hub, browser;
startForFile(() => hubAndBrowser({ WEBHOOK_ALLOW_PRIVATE: 'true' }), (started) => ({ hub, browser } = started));

/** The focused element's test id and what a screen reader is given as its description. */
const focused = (page) => page.evaluate(() => {
  const a = document.activeElement;
  const described = (a.getAttribute('aria-describedby') || '').split(/\s+/).filter(Boolean)
    .map((id) => document.getElementById(id)?.textContent.trim()).join(' ');
  return { testid: a.dataset.testid, described };
});

for (const [label, size] of [['desk', { width: 1366, height: 768 }], ['phone', { width: 390, height: 844 }]]) {
  test(`a new token's secret takes the focus (${label})`, () => withShots(`secret-token-${label}`, async (pages) => {
    const page = await newPage(browser, size);
    pages.push(page);
    await adminSignsIn(page, hub, 'tokens');
    await page.getByTestId('token-name').fill(`CRM sync ${label}`);
    await page.getByTestId('token-create').click();
    await page.getByTestId('token-secret-box').waitFor();
    const now = await focused(page);
    assert.equal(now.testid, 'token-copy');
    assert.match(now.described, /shown this once/);
  }));

  test(`a new endpoint's secret takes the focus (${label})`, () => withShots(`secret-hook-${label}`, async (pages) => {
    const page = await newPage(browser, size);
    pages.push(page);
    await adminSignsIn(page, hub, 'webhooks');
    await page.getByTestId('hook-url').fill(`http://127.0.0.1:9/switchboard-${label}`);
    await page.getByTestId('hook-create').click();
    await page.getByTestId('hook-secret-box').waitFor();
    const now = await focused(page);
    assert.equal(now.testid, 'hook-copy');
    assert.match(now.described, /shown this once/);
  }));
}
