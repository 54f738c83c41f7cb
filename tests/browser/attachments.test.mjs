// Files in a chat, in real browsers: a customer pastes a screenshot into the message box,
// watches it upload and sends it without a caption; the agent sees its thumbnail and opens
// the full picture. The agent picks a PDF with the attach button; the customer sees a card
// with its name, type and size and a download link. On a phone the same works.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createAgent, agentSignsIn, hubAndBrowser, stopAll, openPages, joinedChat, shot, withShots, pasteScreenshot, PDF } from './helpers.mjs';

let hub;
let browser;
before(async () => { ({ hub, browser } = await hubAndBrowser()); });
after(() => stopAll(browser, hub));

test('a pasted screenshot reaches the agent as a thumbnail that opens the picture; a PDF comes back as a card', async () => {
  await withShots('attachments', async (pages) => {
    const alice = await createAgent(hub, { username: 'fiona', display_name: 'Fiona', categories: ['technical'] });
    const [agent, customer] = await openPages(browser, pages, 2);
    await agentSignsIn(agent, hub, alice);
    const panel = await joinedChat(customer, agent, hub, 'technical', 'Paula');
    await customer.getByTestId('message-input').waitFor();

    await pasteScreenshot(customer);
    const item = customer.getByTestId('file-item');
    await item.filter({ hasText: 'image.png' }).waitFor();
    await customer.locator('[data-testid="file-item"][data-ready="true"]').waitFor();
    // A file needs no caption: Send is on with an empty box.
    assert.equal(await customer.getByTestId('send-button').isDisabled(), false);
    await shot(customer, 'attachments-customer-ready');
    await customer.getByTestId('send-button').click();
    await customer.getByTestId('file-tray').waitFor({ state: 'hidden' });

    // The agent sees the thumbnail, loaded, and it opens the full-size picture.
    const thumb = panel.getByTestId('attachment-thumbnail');
    await thumb.waitFor();
    await agent.waitForFunction(() => {
      const img = document.querySelector('[data-testid="chat-panel"] [data-testid="attachment-thumbnail"]');
      return img && img.complete && img.naturalWidth > 0;
    });
    const size = await thumb.evaluate((img) => [img.naturalWidth, img.naturalHeight]);
    assert.deepEqual(size, [320, 240], 'the hub-made thumbnail');
    assert.equal(await thumb.getAttribute('alt'), 'image.png');
    const [opened] = await Promise.all([agent.context().waitForEvent('page'), thumb.click()]);
    await opened.waitForLoadState('load');
    assert.equal(await opened.evaluate(() => document.contentType), 'image/png');
    const full = await opened.evaluate(() => [document.images[0]?.naturalWidth, document.images[0]?.naturalHeight]);
    assert.deepEqual(full, [400, 300], 'the full picture');
    const headers = await agent.evaluate(async (url) => {
      const r = await fetch(url);
      return [r.status, r.headers.get('x-content-type-options'), r.headers.get('content-security-policy')];
    }, await panel.locator('a.attachment-image').getAttribute('href'));
    assert.equal(headers[0], 200);
    assert.equal(headers[1], 'nosniff');
    assert.match(headers[2], /^sandbox/);
    await opened.close();
    // The customer's own copy shows it too, once acknowledged.
    await customer.locator('[data-testid="message"][data-mine="true"][data-seq] [data-testid="attachment-thumbnail"]').waitFor();
    await shot(agent, 'attachments-agent-thumbnail');

    // The agent picks a PDF with the attach button and a note.
    await panel.getByTestId('attach-input').setInputFiles({ name: 'invoice-0042.pdf', mimeType: 'application/pdf', buffer: PDF });
    await panel.locator('[data-testid="file-item"][data-ready="true"]').waitFor();
    await panel.getByTestId('message-input').fill('Here is your invoice');
    await panel.getByTestId('message-input').press('Enter');
    const card = customer.getByTestId('attachment-card');
    await card.filter({ hasText: 'invoice-0042.pdf' }).waitFor();
    await card.filter({ hasText: 'PDF' }).waitFor();
    const download = card.getByTestId('attachment-download');
    await customer.waitForFunction(() => document.querySelector('[data-testid="attachment-download"]')?.href.includes('sig='));
    const href = await download.getAttribute('href');
    const fetched = await customer.evaluate(async (url) => {
      const r = await fetch(url);
      return { status: r.status, disposition: r.headers.get('content-disposition'), type: r.headers.get('content-type') };
    }, href);
    assert.equal(fetched.status, 200);
    assert.equal(fetched.type, 'application/pdf');
    assert.match(fetched.disposition, /^attachment;/);
    await shot(customer, 'attachments-customer-card');
  });
});

test('on a phone the customer attaches with the button, can cancel, and sends several files at once', async () => {
  await withShots('attachments-phone', async (pages) => {
    const gus = await createAgent(hub, { username: 'gus', display_name: 'Gus', categories: ['billing'] });
    const [agent, customer] = await openPages(browser, pages, [{ width: 1280, height: 860 }, { width: 390, height: 844 }]);
    await agentSignsIn(agent, hub, gus);
    const panel = await joinedChat(customer, agent, hub, 'billing', 'Quinn');
    await customer.getByTestId('attach-button').waitFor();
    const box = await customer.getByTestId('attach-button').boundingBox();
    assert.ok(box.width >= 44 && box.height >= 44, `a thumb-sized attach button (${box.width}×${box.height})`);

    await customer.getByTestId('attach-input').setInputFiles([
      { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('order 42, blue, size M\n') },
      { name: 'receipt.pdf', mimeType: 'application/pdf', buffer: PDF },
      { name: 'oops.pdf', mimeType: 'application/pdf', buffer: PDF },
    ]);
    assert.equal(await customer.getByTestId('file-item').count(), 3);
    // One taken back before sending.
    await customer.getByTestId('file-item').filter({ hasText: 'oops.pdf' }).getByTestId('upload-cancel').click();
    await customer.locator('[data-testid="file-item"][data-ready="true"]').nth(1).waitFor();
    assert.equal(await customer.getByTestId('file-item').count(), 2);
    await shot(customer, 'attachments-phone-tray');
    await customer.getByTestId('send-button').click();
    const cards = panel.getByTestId('attachment-card');
    await cards.nth(1).waitFor();
    assert.deepEqual(
      (await cards.allTextContents()).map((t) => t.includes('notes.txt') || t.includes('receipt.pdf')),
      [true, true],
    );
    assert.equal(await panel.getByTestId('attachment-card').filter({ hasText: 'oops.pdf' }).count(), 0);
    // The cards fit the phone's width.
    const own = customer.locator('[data-testid="message"][data-mine="true"] [data-testid="attachment-card"]');
    await own.nth(1).waitFor();
    for (const card of await own.all()) {
      const cardBox = await card.boundingBox();
      const bubble = await card.locator('xpath=ancestor::li[contains(@class, "msg")]').boundingBox();
      assert.ok(cardBox.x >= bubble.x && cardBox.x + cardBox.width <= bubble.x + bubble.width + 0.5,
        `the card fits its message (${JSON.stringify(cardBox)} in ${JSON.stringify(bubble)})`);
    }
    await shot(customer, 'attachments-phone-sent');
  });
});
