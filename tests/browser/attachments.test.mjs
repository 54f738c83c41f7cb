// Files in a chat, in real browsers: a customer pastes a screenshot into the message box,
// watches it upload and sends it without a caption; the agent sees its thumbnail and opens
// the full picture. The agent picks a PDF with the attach button; the customer sees a card
// with its name, type and size and a download link. On a phone the same works. The agent
// drops a PDF on the console; a customer pastes a screenshot in the widget on a shop's
// page; an upload cancelled while it runs sends nothing, and a file removed from the tray
// gives its bytes back to the conversation's quota, even when it is removed while the answer
// to its upload is still on its way and another file is added at once; axe-core finds nothing serious while
// the tray, a progress bar, a card and a thumbnail are on screen. A file holding script,
// opened straight from its link, never runs it.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { agentAndCustomerPages, createAgent, agentSignsIn, hubBrowserAndShop, stopAll, openPages, newPage, joinedChat, customerJoins, panelOf, startProxy, shot, withShots, pasteScreenshot, expectClean, PDF, DEFAULT_SIZE } from './helpers.mjs';

/** The conversation quota of this file's hub: two files of `BIG` bytes do not fit together. */
const QUOTA = 100_000;
const BIG = 60_000;

let hub;
let browser;
let shop;
before(async () => {
  ({ hub, browser, shop } = await hubBrowserAndShop({ ATTACHMENT_CONVERSATION_MAX_BYTES: String(QUOTA) }));
});
after(() => stopAll(browser, hub));

/** A page (as `newPage`) whose context lets axe be injected past the pages' CSP. */
async function axePage(pages) {
  const page = await newPage(browser, DEFAULT_SIZE, { bypassCSP: true });
  pages.push(page);
  return page;
}

/** Agent `username` (of `category`) signed in and customer `name` in a chat with them, both on
 *  pages that take axe: the agent's page, the customer's, and the chat's panel on the console. */
async function chatForAxe(pages, username, category, name) {
  const staff = await createAgent(hub, { username, display_name: username, categories: [category] });
  const agent = await axePage(pages);
  const customer = await axePage(pages);
  await agentSignsIn(agent, hub, staff);
  const panel = await joinedChat(customer, agent, hub, category, name);
  return { agent, customer, panel };
}

/** The thumbnail in the console `agent`'s chat `panel`, once its picture has loaded. */
async function thumbnailShown(agent, panel) {
  const thumb = panel.getByTestId('attachment-thumbnail');
  await thumb.waitFor();
  await agent.waitForFunction(() => {
    const img = document.querySelector('[data-testid="chat-panel"] [data-testid="attachment-thumbnail"]');
    return img && img.complete && img.naturalWidth > 0;
  });
  return thumb;
}

/** A text file of `len` bytes named `name`, for the file input. */
const textFile = (name, len) => ({ name, mimeType: 'text/plain', buffer: Buffer.from('x'.repeat(len - 1) + '\n') });

test('a pasted screenshot reaches the agent as a thumbnail that opens the picture; a PDF comes back as a card', async () => {
  await withShots('attachments', async (pages) => {
    const { agent, customer } = await agentAndCustomerPages(browser, hub, pages, { username: 'fiona', display_name: 'Fiona', categories: ['technical'] });
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
    const thumb = await thumbnailShown(agent, panel);
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

test('the agent drops a PDF on the console and the customer gets its card; axe passes with the tray and the card', async () => {
  await withShots('attachments-drop', async (pages) => {
    const { agent, customer, panel } = await chatForAxe(pages, 'hana', 'technical', 'Rita');
    await panel.getByTestId('message-input').waitFor();

    // A real drag and drop: dragenter, dragover and drop carrying a DataTransfer with the file.
    await panel.getByTestId('message-input').evaluate((box, bytes) => {
      const data = new DataTransfer();
      data.items.add(new File([new Uint8Array(bytes)], 'contract.pdf', { type: 'application/pdf' }));
      for (const type of ['dragenter', 'dragover', 'drop']) {
        box.dispatchEvent(new DragEvent(type, { dataTransfer: data, bubbles: true, cancelable: true }));
      }
    }, [...PDF]);
    await panel.locator('[data-testid="file-item"][data-ready="true"]').filter({ hasText: 'contract.pdf' }).waitFor();
    await expectClean(agent, 'agent console: a file in the tray');
    await shot(agent, 'attachments-drop-tray');
    await panel.getByTestId('send-button').click();
    await panel.getByTestId('file-tray').waitFor({ state: 'hidden' });

    const card = customer.getByTestId('attachment-card').filter({ hasText: 'contract.pdf' });
    await card.waitFor();
    await card.filter({ hasText: 'PDF' }).waitFor();
    await customer.waitForFunction(() => document.querySelector('[data-testid="attachment-download"]')?.href.includes('sig='));
    await expectClean(customer, 'customer page: a file card');
    await shot(customer, 'attachments-drop-card');
  });
});

test('a screenshot pasted in the widget on a shop reaches the agent as a thumbnail that opens; axe passes with it', async () => {
  await withShots('attachments-widget', async (pages) => {
    const ivo = await createAgent(hub, { username: 'ivo', display_name: 'Ivo', categories: ['sales'] });
    const customer = await axePage(pages);
    const agent = await axePage(pages);
    await agentSignsIn(agent, hub, ivo);
    await customer.goto(`${shop}/`);
    await customer.getByTestId('switchboard-widget').getByTestId('widget-launcher').click();
    const chat = customer.frameLocator('[data-testid="switchboard-widget"] >> [data-testid="widget-frame"]');
    const wait = chat.getByTestId('wait-anyway');
    await chat.getByTestId('name-input').or(wait).first().waitFor();
    if (await wait.isVisible()) await wait.click();
    await chat.getByTestId('name-input').fill('Sven');
    await chat.getByTestId('join-button').click();
    await chat.getByTestId('session-title').filter({ hasText: 'Chatting with Ivo' }).waitFor();
    const panel = agent.locator('[data-testid="chat-panel"][data-customer="Sven"]');
    await panel.waitFor();

    // The widget's page is the hub's, in an iframe on the shop's origin: pasted into there.
    const frame = await customer.locator('[data-testid="switchboard-widget"] >> [data-testid="widget-frame"]')
      .elementHandle().then((h) => h.contentFrame());
    assert.notEqual(new URL(frame.url()).origin, new URL(customer.url()).origin);
    await pasteScreenshot(frame);
    await chat.locator('[data-testid="file-item"][data-ready="true"]').filter({ hasText: 'image.png' }).waitFor();
    await chat.getByTestId('send-button').click();
    await chat.getByTestId('file-tray').waitFor({ state: 'hidden' });

    const thumb = await thumbnailShown(agent, panel);
    assert.deepEqual(await thumb.evaluate((img) => [img.naturalWidth, img.naturalHeight]), [320, 240]);
    await expectClean(agent, 'agent console: a thumbnail');
    await shot(agent, 'attachments-widget-agent-thumbnail');
    const [opened] = await Promise.all([agent.context().waitForEvent('page'), thumb.click()]);
    await opened.waitForLoadState('load');
    assert.deepEqual(await opened.evaluate(() => [document.images[0]?.naturalWidth, document.images[0]?.naturalHeight]), [400, 300]);
    await opened.close();
    // The customer's own copy in the widget shows it too, once acknowledged.
    await chat.locator('[data-testid="message"][data-mine="true"][data-seq] [data-testid="attachment-thumbnail"]').waitFor();
    await shot(customer, 'attachments-widget-customer');
  });
});

test('an upload cancelled while it runs sends nothing; a file removed from the tray gives its bytes back', async () => {
  const proxy = await startProxy(hub);
  try {
    await withShots('attachments-cancel', async (pages) => {
      const staff = await createAgent(hub, { username: 'jody', display_name: 'jody', categories: ['billing'] });
      const agent = await axePage(pages);
      const customer = await axePage(pages);
      await agentSignsIn(agent, hub, staff);
      // The customer reaches the hub through the proxy, which keeps the upload's bytes from it
      // until the page has cancelled: Chromium's throttling slows the progress the page shows,
      // not always the bytes (they could all reach the hub, which would then keep the file).
      const panel = await joinedChat(customer, agent, { url: proxy.url }, 'billing', 'Tess');
      await customer.getByTestId('attach-button').waitFor();
      proxy.holdUploads();

      // On a slow line (Chromium's own throttling: 2 KB/s up, so the file takes half a minute),
      // the upload shows its progress bar and is cancelled with most of its bytes still to go:
      // the browser cuts the connection, and the hub keeps nothing of it. (Holding the request
      // in a Playwright route instead could let it go to the hub whole after the page had
      // cancelled it: the hub then kept it, counted, and the next file was refused.)
      const line = await customer.context().newCDPSession(customer);
      const throttle = (uploadThroughput) => line.send('Network.emulateNetworkConditions', {
        offline: false, latency: 0, downloadThroughput: -1, uploadThroughput,
      });
      await line.send('Network.enable');
      await throttle(2 * 1024);
      await customer.getByTestId('attach-input').setInputFiles(textFile('slow.txt', BIG));
      const slow = customer.getByTestId('file-item').filter({ hasText: 'slow.txt' });
      const progress = slow.getByTestId('upload-progress');
      await progress.waitFor();
      await expectClean(customer, 'customer page: an upload under way');
      await shot(customer, 'attachments-cancel-progress');
      // Some bytes out (the line is up), most still to go, when it is cancelled.
      await progress.evaluate((p) => new Promise((resolve) => {
        const check = () => (p.value > 0 ? resolve() : setTimeout(check, 20));
        check();
      }));
      assert.ok(await progress.evaluate((p) => p.value < 0.5), 'cancelled with most of the file still to go');
      await slow.getByTestId('upload-cancel').click();
      await slow.waitFor({ state: 'detached' });
      await customer.getByTestId('file-tray').waitFor({ state: 'hidden' });
      await throttle(-1);
      await line.detach();
      proxy.releaseUploads();

      // A file uploaded, then removed from the tray: the hub deletes it (its bytes back).
      await customer.getByTestId('attach-input').setInputFiles(textFile('first.txt', BIG));
      const first = customer.locator('[data-testid="file-item"][data-ready="true"]').filter({ hasText: 'first.txt' });
      await first.waitFor();
      const [deleted] = await Promise.all([
        customer.waitForResponse((r) => r.request().method() === 'DELETE' && r.url().includes('/api/attachments/')),
        first.getByRole('button', { name: 'Remove first.txt' }).click(),
      ]);
      assert.equal(deleted.status(), 204);
      // Neither counts now: another file as large fits the quota (two would not).
      await customer.getByTestId('attach-input').setInputFiles(textFile('second.txt', BIG));
      await customer.locator('[data-testid="file-item"][data-ready="true"]').filter({ hasText: 'second.txt' }).waitFor();
      await customer.getByTestId('send-button').click();
      await panel.getByTestId('attachment-card').filter({ hasText: 'second.txt' }).waitFor();
      assert.equal(await panel.getByTestId('attachment-card').count(), 1, 'only the file sent reached the agent');
      // And the quota is real: one more as large is refused, said in the tray.
      await customer.getByTestId('attach-input').setInputFiles(textFile('third.txt', BIG));
      await customer.getByTestId('file-item').filter({ hasText: 'third.txt' }).filter({ hasText: 'not sent' }).waitFor();
      await shot(customer, 'attachments-cancel-after');
    });
  } finally {
    await proxy.close();
  }
});

test('a file removed while the answer to its upload is on its way is taken back before the next file is counted', async () => {
  const proxy = await startProxy(hub);
  try {
    await withShots('attachments-late-answer', async (pages) => {
      const staff = await createAgent(hub, { username: 'lou', display_name: 'Lou', categories: ['sales'] });
      const [agent, customer] = await openPages(browser, pages, 2);
      await agentSignsIn(agent, hub, staff);
      await customerJoins(customer, { url: proxy.url }, 'sales', 'Vera');
      await panelOf(agent, 'Vera').waitFor();

      // The whole file goes out, and the hub keeps it, but its answer (the file's id) is held
      // on the way back: removed now, it can only be taken back once the answer comes.
      proxy.hold();
      await customer.getByTestId('attach-input').setInputFiles(textFile('late.txt', BIG));
      const late = customer.getByTestId('file-item').filter({ hasText: 'late.txt' });
      await late.getByTestId('upload-progress').evaluate((p) => new Promise((resolve) => {
        const check = () => (p.value === 1 ? resolve() : setTimeout(check, 20));
        check();
      }));
      for (let i = 0; !proxy.heldText().includes('HTTP/1.1 201'); i += 1) {
        assert.ok(i < 400, 'the hub answers the upload');
        await new Promise((r) => setTimeout(r, 20));
      }
      await late.getByTestId('upload-cancel').click();
      await late.waitFor({ state: 'detached' });

      // Another file as large at once: it fits the quota only once the first is given back,
      // so it goes once the first's answer is in and the file taken back, and is never refused.
      await customer.getByTestId('attach-input').setInputFiles(textFile('next.txt', BIG));
      await new Promise((r) => setTimeout(r, 300));
      proxy.release();
      const next = customer.getByTestId('file-item').filter({ hasText: 'next.txt' });
      await next.and(customer.locator('[data-ready="true"]')).or(next.filter({ hasText: 'not sent' })).first().waitFor();
      assert.equal(await next.getAttribute('data-ready'), 'true', `the next file is taken: ${await next.textContent()}`);
    });
  } finally {
    await proxy.close();
  }
});

test('a file holding script, opened straight from its link in Chromium, never runs it', async () => {
  await withShots('attachments-active', async (pages) => {
    const { agent, customer } = await agentAndCustomerPages(browser, hub, pages, { username: 'kai', display_name: 'Kai', categories: ['general'] });
    const panel = await joinedChat(customer, agent, hub, 'general', 'Uma');
    // Text first (markup at the very start is refused as HTML), script after: a text file.
    const script = 'Copied from the page:\n<html><body><script>document.title="ran"; window.ran && window.ran();</script>hello</body></html>\n';
    const pdf = Buffer.concat([PDF, Buffer.from(`%${script}`)]);
    await panel.getByTestId('attach-input').setInputFiles([
      { name: 'page.txt', mimeType: 'text/plain', buffer: Buffer.from(script) },
      { name: 'page.pdf', mimeType: 'application/pdf', buffer: pdf },
    ]);
    await panel.locator('[data-testid="file-item"][data-ready="true"]').nth(1).waitFor();
    await panel.getByTestId('send-button').click();
    await customer.getByTestId('attachment-card').nth(1).waitFor();
    await customer.waitForFunction(() => [...document.querySelectorAll('[data-testid="attachment-download"]')]
      .filter((a) => a.href.includes('sig=')).length === 2);
    const links = await customer.getByTestId('attachment-download').evaluateAll((as) => as.map((a) => a.href));

    // A page of its own that would hear the script: a binding it calls, and the title it sets.
    const viewer = await newPage(browser, DEFAULT_SIZE, { acceptDownloads: true });
    pages.push(viewer);
    let ran = 0;
    await viewer.context().exposeBinding('ran', () => { ran += 1; });
    for (const url of links) {
      // Served as a download: Chromium does not render it at all.
      const [download] = await Promise.all([viewer.waitForEvent('download'), viewer.goto(url).catch(() => {})]);
      assert.ok(['page.txt', 'page.pdf'].includes(download.suggestedFilename()), download.suggestedFilename());
    }
    // Even without the download header, and even called HTML, it would not run: nosniff
    // keeps text text, and the sandboxing CSP forbids script in whatever is rendered.
    for (const asHtml of [false, true]) {
      await viewer.route('**/api/attachments/**', async (route) => {
        const response = await route.fetch();
        const headers = { ...response.headers() };
        delete headers['content-disposition'];
        if (asHtml) headers['content-type'] = 'text/html';
        await route.fulfill({ response, headers });
      });
      await viewer.goto(links[0]);
      await viewer.waitForLoadState('load');
      assert.match(await viewer.evaluate(() => document.body?.innerText || ''), /hello/, 'the page was rendered');
      assert.notEqual(await viewer.title(), 'ran');
      await viewer.unrouteAll({ behavior: 'wait' });
    }
    assert.equal(ran, 0, 'no script of the file ran');
    await shot(viewer, 'attachments-active-rendered');
    // The check can see a script run: with the hub's policy stripped too, the same file as
    // HTML runs it.
    await viewer.route('**/api/attachments/**', async (route) => {
      const response = await route.fetch();
      const headers = { ...response.headers(), 'content-type': 'text/html' };
      delete headers['content-disposition'];
      delete headers['content-security-policy'];
      await route.fulfill({ response, headers });
    });
    await viewer.goto(links[0]);
    await viewer.waitForFunction(() => document.title === 'ran');
    assert.equal(ran, 1, 'the control page ran it');
  });
});
