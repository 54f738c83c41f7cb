// Two quick status changes of the open chat's conversation: Alt+W (waiting on customer),
// then Alt+Z (snooze). Once its header shows "Snoozed" it never shows "Waiting on customer"
// again: the word of the earlier change (the list read it set off, answered with the status
// the store had before the snooze) arrives after the snooze was drawn, and is not drawn
// over it. The page's list reads that say "waiting on customer" are held back (the hub
// answers them at once; the page gets the answer when the test lets it), so that word is
// sure to come late, as it does now and then on a slow network or a busy hub.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withShots, hubAndBrowser, startForFile, agentChattingWith, panelOf } from './helpers.mjs';

let hub, browser;
startForFile(() => hubAndBrowser(), (started) => ({ hub, browser } = started));

test('a later status change is not drawn over by the late word of an earlier one', () => withShots('status-order', async (pages) => {
  const wanda = { username: 'wanda-order', display_name: 'Wanda', categories: ['general'] };
  const name = 'Olive order';
  const size = { width: 1366, height: 768 };
  const { agentPage } = await agentChattingWith(browser, hub, pages, size, wanda, name, 'Any news?', { keepCsp: true });
  const panel = panelOf(agentPage, name);
  const header = panel.getByTestId('chat-conversation-controls');
  const status = header.getByTestId('chat-conversation-status');
  await status.filter({ hasText: 'Open' }).waitFor();

  // The page's list reads (GET /api/inbox) answered "waiting on customer" wait for `release`.
  let holding = true;
  let release;
  const released = new Promise((resolve) => { release = () => { holding = false; resolve(); }; });
  let heldOne;
  const held = new Promise((resolve) => { heldOne = resolve; });
  let askedAfter;
  const readAfterRelease = new Promise((resolve) => { askedAfter = resolve; });
  await agentPage.route('**/api/inbox?*', async (route) => {
    if (!holding) askedAfter();
    const response = await route.fetch();
    const body = await response.json().catch(() => null);
    if (holding && body?.items?.some((c) => c.customer_name === name && c.status === 'pending')) {
      // The read of the view shown (the other one is the "My chats" conversations').
      if (!route.request().url().includes('limit=')) heldOne();
      await released;
    }
    await route.fulfill({ response });
  });

  // Every text the header's status shows, in order.
  await header.evaluate((host) => {
    window.statusesShown = [];
    const note = () => {
      const text = host.querySelector('[data-testid="chat-conversation-status"]')?.textContent;
      if (text && window.statusesShown.at(-1) !== text) window.statusesShown.push(text);
    };
    note();
    new MutationObserver(note).observe(host, { childList: true, subtree: true, characterData: true });
  });

  await panel.getByTestId('message-input').focus();
  await agentPage.keyboard.press('Alt+KeyW');
  await status.filter({ hasText: 'Waiting on customer' }).waitFor();
  // The list read its answer set off was answered "waiting on customer", and is held.
  await held;
  await agentPage.keyboard.press('Alt+KeyZ');
  await status.filter({ hasText: /^Snoozed until / }).waitFor();
  // The held answer reaches the page; the read queued behind it is asked for once the page
  // has taken it in (and drawn what it would draw).
  release();
  await readAfterRelease;
  await status.filter({ hasText: /^Snoozed until / }).waitFor();
  // The read asked for after the release may still be on its way through the route: let it
  // finish before the pages close, or its answer lands on a closed page.
  await agentPage.unrouteAll({ behavior: 'wait' });

  const shown = await agentPage.evaluate(() => window.statusesShown);
  const snoozed = shown.findIndex((t) => t.startsWith('Snoozed'));
  assert.ok(snoozed > 0, `the header showed the snooze: ${JSON.stringify(shown)}`);
  assert.deepEqual(shown.slice(snoozed).filter((t) => t === 'Waiting on customer'), [],
    `"Waiting on customer" came back after "Snoozed": ${JSON.stringify(shown)}`);
  assert.deepEqual(shown.slice(0, snoozed), ['Open', 'Waiting on customer'], JSON.stringify(shown));
}));
