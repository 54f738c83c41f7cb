// An agent writes to a customer who left: the line goes to them by mail (a real SMTP sink),
// and the console marks it with its delivery state, "✉ queued" and then "✉ sent"; a mail the
// relay refuses for good (the sink refuses addresses starting with "bounce") is marked
// "⚠ bounced", the relay's reason on hover. The customer's answer to that mail, delivered
// to the desk's mailbox (a real Dovecot), comes back into the console as their next line,
// marked "✉ by email", live, after a reload and in the archive, with the files she attached.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newPage, createAgent, agentSignsIn, adminSignsIn, withShots, shot, mailTo, hubBrowserAndMail, startForFile, says, panelOf, waitMs } from './helpers.mjs';
import { startDovecot, IMAP_USER, IMAP_PASSWORD } from './imap.mjs';

let hub, browser, sink, imap;
// A short grace period (a customer who closed the page is gone after 2 s) and window; the
// desk's mailbox on the test's own Dovecot.
startForFile(async () => {
  const mailbox = await startDovecot();
  const started = await hubBrowserAndMail({
    RESUME_GRACE_SECS: '2', FOLLOW_UP_MAIL_DELAY_SECS: '1', OUTBOX_POLL_SECS: '0.2',
    IMAP_URL: `imap://127.0.0.1:${mailbox.port}`, IMAP_USER, IMAP_PASSWORD,
  });
  return { ...started, imap: mailbox };
}, (started) => ({ hub, browser, sink, imap } = started));

/** Agent `username` signs in; customer `name` (email `email`) chats with them and leaves
 *  (the page closed, the grace period over). The agent's page and the chat's panel. */
async function customerLeaves(pages, username, name, email) {
  const agent = await createAgent(hub, { username, display_name: 'Vera', categories: ['general'], max_chats: 2 });
  const agentPage = await newPage(browser, { width: 1366, height: 768 });
  pages.push(agentPage);
  await agentSignsIn(agentPage, hub, agent);
  const customer = await newPage(browser, { width: 390, height: 844 });
  pages.push(customer);
  await customer.goto(`${hub.url}/`);
  await customer.getByTestId('category-general').click();
  await customer.getByTestId('name-input').fill(name);
  await customer.getByTestId('email-input').fill(email);
  await customer.getByTestId('join-button').click();
  await customer.getByTestId('session').waitFor();
  const panel = panelOf(agentPage, name);
  await panel.waitFor();
  await says(customer, panel, 'Wo ist mein Paket?');
  await customer.close();
  await panel.getByTestId('chat-ended').filter({ hasText: 'stays open in your list' }).waitFor({ timeout: waitMs(15000) });
  return { agentPage, panel };
}

/** Waits until `line` is marked sent by mail; the mail `email` received. */
async function mailedFor(line, email) {
  await line.getByTestId('mail-state').filter({ hasText: '✉ sent' }).waitFor({ timeout: waitMs(20000) });
  return mailTo(sink, email);
}

test('a line written to a customer who left goes out by mail and the console shows it sent', () => withShots('follow-up-mail', async (pages) => {
  const { agentPage, panel } = await customerLeaves(pages, 'vera-mail', 'Jörg away', 'joerg.away@example.com');
  await says(panel, panel, 'Ihr Paket kommt morgen. Grüße');
  const line = panel.getByTestId('message').filter({ hasText: 'Ihr Paket kommt morgen.' });
  const mail = await mailedFor(line, 'joerg.away@example.com');
  assert.match(mail, /Ihr Paket kommt morgen\. Grüße/);
  await shot(agentPage, 'follow-up-mail-sent');
}));

test('a file written to a customer who left goes with the line and the mail names it', () => withShots('follow-up-mail-file', async (pages) => {
  const { agentPage, panel } = await customerLeaves(pages, 'vera-file', 'Jörg file', 'joerg.file@example.com');
  await panel.getByTestId('attach-input').setInputFiles({
    name: 'lieferschein.pdf', mimeType: 'application/pdf', buffer: Buffer.from('%PDF-1.4\n1 0 obj\n<<>>\nendobj\n'),
  });
  await panel.locator('[data-testid="file-item"][data-ready="true"]').waitFor();
  await panel.getByTestId('message-input').fill('Der Lieferschein');
  await panel.getByTestId('message-input').press('Enter');
  const line = panel.getByTestId('message').filter({ hasText: 'Der Lieferschein' });
  await line.getByTestId('attachment-card').filter({ hasText: 'lieferschein.pdf' }).waitFor();
  const mail = await mailedFor(line, 'joerg.file@example.com');
  assert.match(mail, /Der Lieferschein/);
  assert.match(mail, /\[file: lieferschein\.pdf, 29 B\]/);
  await shot(agentPage, 'follow-up-mail-file');
}));

test('a mail the relay refuses for good is marked bounced, the reason on hover', () => withShots('follow-up-mail-bounced', async (pages) => {
  const { agentPage, panel } = await customerLeaves(pages, 'vera-bounce', 'Karl unknown', 'bounce.karl@example.com');
  await says(panel, panel, 'Sind Sie noch da?');
  const line = panel.getByTestId('message').filter({ hasText: 'Sind Sie noch da?' });
  const mark = line.getByTestId('mail-state').filter({ hasText: '⚠ bounced' });
  await mark.waitFor({ timeout: waitMs(20000) });
  const title = await mark.getAttribute('title');
  assert.match(title, /^Bounced: not delivered to bounce\.karl@example\.com: .*550/);
  assert.match(await mark.getAttribute('class'), /\bbounced\b/);
  await shot(agentPage, 'follow-up-mail-bounced');
}));

test('the customer answers the mail and their answer is their next line in the console', () => withShots('follow-up-mail-answer', async (pages) => {
  const { agentPage, panel } = await customerLeaves(pages, 'vera-answer', 'Lotte by mail', 'lotte.answer@example.com');
  await says(panel, panel, 'Ihre Rechnung ist korrigiert.');
  const line = panel.getByTestId('message').filter({ hasText: 'Ihre Rechnung ist korrigiert.' });
  const mail = await mailedFor(line, 'lotte.answer@example.com');
  const replyTo = mail.match(/^Reply-To: .*?<?([^<>\s]+@[^<>\s]+)>?\s*$/mi)?.[1];
  const messageId = mail.match(/^Message-ID: (<[^>]+>)/mi)?.[1];
  assert.ok(replyTo && messageId, mail);

  // Her mail client answers, quoting the desk's mail below her answer.
  await imap.append([
    'From: Lotte <lotte.answer@example.com>',
    `To: ${replyTo}`,
    'Subject: Re: Ihre Anfrage',
    'Message-ID: <answer-lotte@example.com>',
    `In-Reply-To: ${messageId}`,
    `References: ${messageId}`,
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="b"',
    '',
    '--b',
    'Content-Type: text/plain; charset=utf-8',
    '',
    'Danke, jetzt stimmt die Adresse.',
    '',
    '> Ihre Rechnung ist korrigiert.',
    '--b',
    'Content-Type: image/png; name="adresse.png"',
    'Content-Disposition: attachment; filename="adresse.png"',
    'Content-Transfer-Encoding: base64',
    '',
    // A red picture, 1 by 1.
    'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
    '--b',
    'Content-Type: application/pdf; name="Beleg.pdf"',
    'Content-Disposition: attachment; filename="Beleg.pdf"',
    'Content-Transfer-Encoding: base64',
    '',
    Buffer.from('%PDF-1.4\n1 0 obj\n<<>>\nendobj\n').toString('base64'),
    '--b--',
    '',
  ].join('\r\n'));
  const answer = panel.getByTestId('message').filter({ hasText: 'Danke, jetzt stimmt die Adresse.' });
  await answer.waitFor({ timeout: waitMs(30000) });
  assert.doesNotMatch(await answer.innerText(), /Ihre Rechnung ist korrigiert/, 'the quoted history is not shown');
  // The files she attached come with it: the picture shown, the PDF to download.
  const picture = answer.getByTestId('attachment-thumbnail');
  await picture.waitFor();
  await agentPage.waitForFunction((img) => img.complete && img.naturalWidth > 0, await picture.elementHandle());
  await answer.getByTestId('attachment-card').filter({ hasText: 'Beleg.pdf' }).waitFor();
  // It is marked as come by mail, as the agent's line is marked as gone by mail.
  await answer.getByTestId('came-by-mail').filter({ hasText: '✉ by email' }).waitFor();
  assert.equal(await line.getByTestId('came-by-mail').count(), 0, 'the agent\'s own line did not come by mail');
  await shot(agentPage, 'follow-up-mail-answer');

  // After a reload the conversation opens from the archive, the mark still there.
  await agentPage.reload();
  await agentPage.getByTestId('connection-state').filter({ hasText: 'online' }).waitFor();
  const row = agentPage.locator('[data-testid="conversation-item"][data-customer="Lotte by mail"]');
  await row.getByTestId('conversation-open').click();
  const reopened = panelOf(agentPage, 'Lotte by mail');
  const again = reopened.getByTestId('message').filter({ hasText: 'Danke, jetzt stimmt die Adresse.' });
  await again.getByTestId('came-by-mail').filter({ hasText: '✉ by email' }).waitFor();
  assert.equal(await reopened.getByTestId('came-by-mail').count(), 1, 'only her answer came by mail');
  await shot(agentPage, 'follow-up-mail-answer-reloaded');
  // And in the archive of past conversations.
  await agentPage.getByTestId('archive-row').filter({ hasText: 'Lotte by mail' }).getByTestId('archive-open').click();
  await agentPage.getByTestId('archive-message').filter({ hasText: 'Danke, jetzt stimmt die Adresse.' })
    .getByTestId('came-by-mail').waitFor();
  assert.doesNotMatch(await agentPage.getByTestId('archive-customer').locator('..').innerText(), /\bnull\b/, 'no part missing shows as "null"');
  await agentPage.setViewportSize({ width: 390, height: 844 });
  await again.scrollIntoViewIfNeeded();
  await shot(agentPage, 'follow-up-mail-answer-phone');
}));

// Last in this file: it stops the mailbox's server.
test('the admin dashboard says the mailbox is read, and why not once it cannot be', () => withShots('inbound-mail-dashboard', async (pages) => {
  const page = await newPage(browser, { width: 1366, height: 768 });
  pages.push(page);
  await adminSignsIn(page, hub, 'dashboard');
  const line = page.getByTestId('inbound-mail');
  await page.locator('[data-testid="inbound-mail"][data-state="ok"]').waitFor({ timeout: waitMs(15000) });
  assert.match(await line.innerText(), /^Customer mail: read, last look .+ · \d+ mails taken in\.$/);
  imap.stop();
  await page.locator('[data-testid="inbound-mail"][data-state="failing"]').waitFor({ timeout: waitMs(20000) });
  assert.match(await line.innerText(), /^Customer mail: the mailbox cannot be read \(\d+ tries\): .+\. Last read .+\.$/);
  await shot(page, 'inbound-mail-failing');
}));
