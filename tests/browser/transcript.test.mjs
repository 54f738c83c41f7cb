// The transcript by mail from the customer page (phone width, in Tokyo): the email given
// when joining fills the "Email me this transcript" form; a malformed address is refused in
// place; asked during the chat, the page says it comes when the chat ends, then that it is
// on its way; the mail (read from a real SMTP sink) has the chat in Tokyo time and never the
// agent's note; its rating link opens /rate, which takes one rating and says so after.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { newPage, createAgent, agentSignsIn, withShots, shot, mailTo, openPages, hubBrowserAndMail, startForFile } from './helpers.mjs';

const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');
const PHONE = { width: 390, height: 844 };

async function seriousViolations(page) {
  await page.addScriptTag({ path: AXE });
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  return result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id}: ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`);
}

let hub, browser, sink;
startForFile(() => hubBrowserAndMail({ MAIL_FROM: 'Help desk <desk@example.com>', OUTBOX_POLL_SECS: '0.2' }),
  (started) => ({ hub, browser, sink } = started));

test('the customer asks for the transcript during the chat; the mail comes once it ends and its link rates the chat once', () => withShots('transcript-mail', async (pages) => {
  const agent = await createAgent(hub, { username: 'tess', display_name: 'Tess', categories: ['general'] });
  const [agentPage] = await openPages(browser, pages, 1);
  await agentSignsIn(agentPage, hub, agent);
  const customer = await newPage(browser, PHONE, { bypassCSP: true, timezoneId: 'Asia/Tokyo' });
  pages.push(customer);
  await customer.goto(`${hub.url}/`);
  await customer.getByTestId('category-general').click();
  await customer.getByTestId('name-input').fill('Kenji');
  // A malformed address is refused before joining.
  await customer.getByTestId('email-input').fill('kenji@');
  await customer.getByTestId('join-button').click();
  await customer.getByTestId('email-error').filter({ hasText: 'valid email' }).waitFor();
  await customer.getByLabel(/Your email/).fill('kenji@example.com');
  await customer.getByTestId('join-button').click();
  await customer.getByTestId('session').waitFor();

  const panel = agentPage.locator('[data-testid="chat-panel"][data-customer="Kenji"]');
  await panel.waitFor();
  await customer.getByTestId('message-input').fill('Where is my parcel <b>?</b>');
  await customer.getByTestId('send-button').click();
  await panel.getByText('Where is my parcel <b>?</b>').waitFor();
  await panel.getByTestId('message-input').fill('On its way & due Friday');
  await panel.getByTestId('send-button').click();
  await panel.getByTestId('note-input').fill('INTERNAL-NOTE: VIP customer');
  await panel.getByTestId('note-button').click();
  await panel.getByTestId('note').filter({ hasText: 'INTERNAL-NOTE' }).waitFor();
  await customer.getByTestId('message').filter({ hasText: 'On its way & due Friday' }).waitFor();

  // "Email me this transcript": the address given when joining is filled in.
  await customer.getByTestId('transcript-open').click();
  const input = customer.getByTestId('transcript-email');
  assert.equal(await input.inputValue(), 'kenji@example.com');
  await input.fill('not-an-address');
  await customer.getByTestId('transcript-send').click();
  await customer.getByTestId('transcript-error').filter({ hasText: 'valid email' }).waitFor();
  await input.fill('kenji@example.com');
  const width = await customer.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= PHONE.width, `no sideways scrolling (scrollWidth ${width})`);
  assert.deepEqual(await seriousViolations(customer), []);
  await shot(customer, 'customer-transcript-form-phone');
  await customer.getByTestId('transcript-send').click();
  await customer.getByTestId('transcript-status').filter({ hasText: 'kenji@example.com when the chat ends' }).waitFor();

  // The chat ends: the page says the mail is on its way; the mail has the chat, not the note.
  await panel.getByTestId('end-chat').click();
  await customer.getByTestId('transcript-status').filter({ hasText: 'on its way to kenji@example.com' }).waitFor();
  const mail = await mailTo(sink, 'kenji@example.com');
  assert.match(mail, /times in Asia\/Tokyo/);
  assert.match(mail, /Kenji: Where is my parcel <b>\?<\/b>/);
  assert.match(mail, /Where is my parcel &lt;b&gt;\?&lt;\/b&gt;/);
  assert.match(mail, /Tess: On its way & due Friday/);
  assert.doesNotMatch(mail, /INTERNAL-NOTE/);
  assert.equal(sink.mails().length, 1);
  // Asked again for the same address with nothing said since: the page says it went, and
  // promises no second mail.
  await customer.getByTestId('transcript-open').click();
  await customer.getByTestId('transcript-email').fill('kenji@example.com');
  await customer.getByTestId('transcript-send').click();
  await customer.getByTestId('transcript-status').filter({ hasText: 'emailed to kenji@example.com already' }).waitFor();
  assert.equal(sink.mails().length, 1);

  // The mail's rating link opens the rating page, which takes one rating.
  const link = mail.match(/\/rate\?token=([A-Za-z0-9_.-]+)/);
  assert.ok(link, 'a rating link');
  const rate = await newPage(browser, PHONE, { bypassCSP: true });
  pages.push(rate);
  await rate.goto(`${hub.url}/rate?token=${link[1]}`);
  await rate.getByTestId('rating').waitFor();
  assert.deepEqual(await seriousViolations(rate), []);
  await rate.locator('label[for="rating-5"]').click();
  await shot(rate, 'rate-page-phone');
  await rate.getByTestId('rating-send').click();
  await rate.getByTestId('rating-thanks').filter({ hasText: 'Thanks' }).waitFor();
  await panel.getByTestId('chat-rated').filter({ hasText: '5 of 5' }).waitFor();
  // The link again: the rating stands, a second is refused.
  await rate.goto(`${hub.url}/rate?token=${link[1]}`);
  await rate.locator('label[for="rating-1"]').click();
  await rate.getByTestId('rating-send').click();
  await rate.getByTestId('rating-thanks').filter({ hasText: 'rated already' }).waitFor();
  // A broken link says so.
  await rate.goto(`${hub.url}/rate?token=nonsense`);
  await rate.getByTestId('rate-page-error').filter({ hasText: 'not complete' }).waitFor();
  // Still one mail: nothing was sent twice.
  assert.equal(sink.mails().length, 1);
}));
