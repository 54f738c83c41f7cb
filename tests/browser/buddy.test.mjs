// The buddy list: two people see each other, invitations are declined,
// cancelled and accepted, they chat with a typing indicator, and one ends it.
// A second tab with the stored key is the same person. Signed-in staff send each other
// files: a pasted screenshot shows as a thumbnail, a PDF as a card.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { shot, withShots, hubAndBrowser, stopAll, openPages, newPage, createAgent, agentSignsIn, pasteScreenshot, PDF, expectClean } from './helpers.mjs';

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

test('staff in a buddy chat paste a screenshot and attach a PDF; the peer sees the thumbnail and the card', async () => {
  await withShots('buddy-files', async (pages) => {
    const ivo = await createAgent(hub, { username: 'ivo', display_name: 'Ivo', categories: ['general'] });
    const jo = await createAgent(hub, { username: 'joan', display_name: 'Jo', categories: ['general'] });
    // Signed in on the console (for the session), then on the buddy list: the staff roster.
    // `bypassCSP` lets the test inject axe-core.
    const [ivoPage, joPage] = [await newPage(browser, undefined, { bypassCSP: true }), await newPage(browser, undefined, { bypassCSP: true })];
    pages.push(ivoPage, joPage);
    for (const [page, agent] of [[ivoPage, ivo], [joPage, jo]]) {
      await agentSignsIn(page, hub, agent, { available: false });
      await page.goto(`${hub.url}/buddy.html`);
      await page.getByTestId('me').filter({ hasText: `You are ${agent.display_name}` }).waitFor();
    }
    await entry(ivoPage, 'Jo').getByTestId('invite').click();
    await joPage.getByTestId('incoming-invite').getByTestId('accept').click();
    await ivoPage.getByTestId('chat-title').filter({ hasText: 'Chat with Jo' }).waitFor();
    await joPage.getByTestId('chat-title').filter({ hasText: 'Chat with Ivo' }).waitFor();

    // Ivo pastes a screenshot and sends it without a caption.
    await pasteScreenshot(ivoPage);
    await ivoPage.locator('[data-testid="file-item"][data-ready="true"]').waitFor();
    await expectClean(ivoPage, 'buddy chat: a file ready to send');
    assert.equal(await ivoPage.getByTestId('send-button').isDisabled(), false, 'a file needs no caption');
    await ivoPage.getByTestId('send-button').click();
    await ivoPage.getByTestId('file-tray').waitFor({ state: 'hidden' });

    // Jo sees its thumbnail, loaded through a link, and it opens the full picture.
    const thumb = joPage.getByTestId('attachment-thumbnail');
    await thumb.waitFor();
    await joPage.waitForFunction(() => {
      const img = document.querySelector('[data-testid="attachment-thumbnail"]');
      return img && img.complete && img.naturalWidth > 0;
    });
    assert.deepEqual(await thumb.evaluate((img) => [img.naturalWidth, img.naturalHeight]), [320, 240], 'the hub-made thumbnail');
    const full = await joPage.evaluate(async (url) => {
      const r = await fetch(url);
      return [r.status, r.headers.get('content-type')];
    }, await joPage.locator('a.attachment-image').getAttribute('href'));
    assert.deepEqual(full, [200, 'image/png']);
    await ivoPage.locator('[data-testid="message"][data-mine="true"][data-seq] [data-testid="attachment-thumbnail"]').waitFor();
    await expectClean(joPage, 'buddy chat: a picture received');
    await shot(joPage, 'buddy-files-thumbnail');

    // Jo attaches a PDF with the button; Ivo gets a card with a download link.
    await joPage.getByTestId('attach-input').setInputFiles({ name: 'rota.pdf', mimeType: 'application/pdf', buffer: PDF });
    await joPage.locator('[data-testid="file-item"][data-ready="true"]').waitFor();
    await joPage.getByTestId('message-input').fill('next week');
    await joPage.getByTestId('message-input').press('Enter');
    const card = ivoPage.getByTestId('attachment-card').filter({ hasText: 'rota.pdf' });
    await card.waitFor();
    await ivoPage.waitForFunction(() => document.querySelector('[data-testid="attachment-download"]')?.href.includes('sig='));
    await shot(ivoPage, 'buddy-files-card');
  });
});

test('the public roster has no attach button (no account to upload with)', async () => {
  await withShots('buddy-public-no-files', async (pages) => {
    const [kim, lea] = await openPages(browser, pages, 2);
    await joins(kim, 'Kim');
    await joins(lea, 'Lea');
    await entry(kim, 'Lea').getByTestId('invite').click();
    await lea.getByTestId('incoming-invite').getByTestId('accept').click();
    await kim.getByTestId('message-input').waitFor();
    assert.equal(await kim.getByTestId('attach-button').count(), 0);
  });
});
