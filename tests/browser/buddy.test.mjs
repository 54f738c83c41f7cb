// The buddy list: two people see each other, invitations are declined,
// cancelled and accepted, they chat with a typing indicator, and one ends it.
// A second tab with the stored key is the same person.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { shot, withShots, hubAndBrowser, stopAll, openPages } from './helpers.mjs';

let hub;
let browser;
before(async () => { ({ hub, browser } = await hubAndBrowser({ BUDDY_GRACE_SECS: '1' })); });
after(() => stopAll(browser, hub));

async function joins(page, name) {
  await page.goto(`${hub.url}/buddy.html`);
  await page.getByTestId('name-input').fill(name);
  await page.getByTestId('join-button').click();
  await page.getByTestId('buddy-list').getByText(`${name} (you)`).waitFor();
}
const entry = (page, name) => page.locator(`[data-testid="buddy"][data-name="${name}"]`);

test('two buddies invite, decline, cancel, accept, chat and end', async () => {
  await withShots('buddy', async (pages) => {
    const [gina, hal] = await openPages(browser, pages, 2);

    // A name over 100 characters is refused by the hub; its message shows by the field.
    await gina.goto(`${hub.url}/buddy.html`);
    await gina.getByTestId('name-input').fill('G'.repeat(101));
    await gina.getByTestId('join-button').click();
    await gina.getByTestId('name-error').filter({ hasText: /100/ }).waitFor();

    await gina.getByTestId('name-input').fill('Gina');
    await gina.getByTestId('join-button').click();
    await gina.getByTestId('buddy-list').getByText('Gina (you)').waitFor();
    await joins(hal, 'Hal');
    await entry(gina, 'Hal').getByTestId('buddy-status').filter({ hasText: 'available' }).waitFor();
    await entry(hal, 'Gina').waitFor();

    // Decline.
    await entry(gina, 'Hal').getByTestId('invite').click();
    await gina.getByTestId('outgoing-invite').waitFor();
    await hal.getByTestId('incoming-invite').filter({ hasText: 'Gina invites you' }).getByTestId('decline').click();
    await gina.getByTestId('page-notice').filter({ hasText: 'Hal declined' }).waitFor();
    await gina.getByTestId('outgoing-invite').waitFor({ state: 'detached' });

    // Cancel.
    await entry(gina, 'Hal').getByTestId('invite').click();
    await hal.getByTestId('incoming-invite').waitFor();
    await gina.getByTestId('cancel-invite').click();
    await hal.getByTestId('incoming-invite').waitFor({ state: 'detached' });
    await hal.getByTestId('page-notice').filter({ hasText: 'withdrew' }).waitFor();

    // Accept and chat.
    await entry(hal, 'Gina').getByTestId('invite').click();
    await gina.getByTestId('incoming-invite').getByTestId('accept').click();
    await gina.getByTestId('chat-title').filter({ hasText: 'Chat with Hal' }).waitFor();
    await hal.getByTestId('chat-title').filter({ hasText: 'Chat with Gina' }).waitFor();
    await entry(gina, 'Hal').getByTestId('buddy-status').filter({ hasText: 'busy' }).waitFor();

    await gina.getByTestId('message-input').pressSequentially('Hi Hal', { delay: 20 });
    await hal.getByTestId('typing-indicator').filter({ hasText: 'Gina is typing' }).waitFor();
    await gina.getByTestId('message-input').press('Enter');
    const got = hal.getByTestId('message').filter({ hasText: 'Hi Hal' });
    await got.waitFor();
    assert.equal(await got.getAttribute('data-mine'), 'false');
    await hal.getByTestId('message-input').fill('Hello Gina');
    await hal.getByTestId('send-button').click();
    await gina.getByTestId('message').filter({ hasText: 'Hello Gina' }).getByTestId('message-time').waitFor();
    await hal.getByTestId('typing-indicator').filter({ hasText: /^$/ }).waitFor();

    // Length limit is enforced before sending.
    await hal.getByTestId('message-input').fill('y'.repeat(2001));
    assert.equal(await hal.getByTestId('send-button').isDisabled(), true);
    await hal.getByTestId('char-counter').filter({ hasText: 'limit is 2000' }).waitFor();
    await hal.getByTestId('message-input').fill('');

    // Another tab of Gina's (same localStorage key) is the same person, chat included.
    const gina2 = await gina.context().newPage();
    await gina2.goto(`${hub.url}/buddy.html`);
    await gina2.getByTestId('buddy-list').getByText('Gina (you)').waitFor();
    await gina2.getByTestId('message').filter({ hasText: 'Hello Gina' }).waitFor();
    assert.equal(await gina2.getByTestId('buddy').count(), 2, 'no second Gina on the list');
    await gina2.close();

    await shot(gina, 'buddy-chat');
    await hal.getByTestId('end-chat').click();
    await gina.getByTestId('chat-ended').filter({ hasText: 'Hal ended the chat' }).waitFor();
    await hal.getByTestId('chat-ended').filter({ hasText: 'You ended the chat' }).waitFor();
    await entry(hal, 'Gina').getByTestId('buddy-status').filter({ hasText: 'available' }).waitFor();
  });
});
