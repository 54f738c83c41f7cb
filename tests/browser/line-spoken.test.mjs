// What a screen reader hears of each line of a live chat on the customer's page: the line
// opens with its author's name ("Walker: …", "You: …"), never a bare "Them:" while the
// agent's name is known; in the agent's console the customer's lines open with the
// customer's name. At desk and phone sizes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withShots, hubAndBrowser, startForFile, says, agentChattingWith, panelOf } from './helpers.mjs';

let hub, browser;
startForFile(() => hubAndBrowser(), (started) => ({ hub, browser } = started));

/** The text a screen reader reads before the line `text` in `place` (its hidden author prefix). */
async function spokenAuthor(place, text) {
  const line = place.getByTestId('message').filter({ hasText: text });
  await line.waitFor();
  return line.locator('.sr-only').first().textContent();
}

for (const [label, size] of [['desk', { width: 1366, height: 768 }], ['phone', { width: 390, height: 844 }]]) {
  test(`each live line is read with its author's name (${label})`, () => withShots(`line-spoken-${label}`, async (pages) => {
    const name = `Carla ${label}`;
    const { agentPage, customer } = await agentChattingWith(browser, hub, pages, size,
      { username: `walker-spoken-${label}`, display_name: 'Walker', categories: ['general'] }, name, 'My order is late');
    const panel = panelOf(agentPage, name);
    await says(panel, customer, 'Let me check that for you');
    assert.equal(await spokenAuthor(customer, 'Let me check that for you'), 'Walker: ');
    assert.equal(await spokenAuthor(customer, 'My order is late'), 'You: ');
    // In the agent's console: the customer's lines by the customer's name, the agent's own as "You".
    assert.equal(await spokenAuthor(panel, 'My order is late'), `${name}: `);
    assert.equal(await spokenAuthor(panel, 'Let me check that for you'), 'You: ');
  }));
}
