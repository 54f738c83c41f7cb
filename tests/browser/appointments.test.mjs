// Appointments (issue 17): a customer books a free slot on the booking page (shown in
// their own time, the desk's zone beside it), opens the cancel link of the confirmation
// MAIL (received by a real SMTP sink, aiosmtpd from .venv), and cancels with the button; opening the link alone changes nothing, a second visit
// says it is cancelled, and a bad link is a plain message. On a phone-sized window.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startHub, launchBrowser, newPage, createAgent, agentSignsIn, withShots, apiCall, ADMIN_PASSWORD } from './helpers.mjs';

const PYTHON = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../.venv/bin/python');

/** A free loopback port. */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** A real SMTP sink (aiosmtpd) writing every mail into a Maildir that must not exist yet. */
async function startSmtpSink() {
  if (!existsSync(PYTHON)) throw new Error(`${PYTHON} is missing: run scripts/ensure-test-deps.sh (make test does)`);
  const port = await freePort();
  const maildir = path.join(mkdtempSync(path.join(os.tmpdir(), 'switchboard-sink-')), 'maildir');
  const child = spawn(PYTHON, ['-m', 'aiosmtpd', '-n', '-c', 'aiosmtpd.handlers.Mailbox', maildir, '-l', `127.0.0.1:${port}`],
    { stdio: 'ignore' });
  for (let i = 0; i < 200; i += 1) {
    const up = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => { socket.end(); resolve(true); });
      socket.on('error', () => resolve(false));
    });
    if (up) return { port, maildir, stop: () => { child.kill(); rmSync(path.dirname(maildir), { recursive: true, force: true }); } };
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill();
  throw new Error(`aiosmtpd did not listen on ${port}`);
}

/** Every mail the sink received, raw. */
function mails(sink) {
  const dir = path.join(sink.maildir, 'new');
  return existsSync(dir) ? readdirSync(dir).map((f) => readFileSync(path.join(dir, f), 'utf8')) : [];
}

/** The cancel link in a raw mail, whichever transfer encoding its text part got. */
function cancelLinkIn(raw) {
  const pattern = /https?:\/\/[^\s"<>]*\/cancel\.html\?token=[A-Za-z0-9_-]+/;
  // Quoted-printable: soft line breaks and =XX escapes.
  const qp = raw.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16)));
  const found = qp.match(pattern);
  if (found) return found[0];
  // Base64: each block of base64 lines, decoded.
  for (const block of raw.split(/\r?\n\r?\n/)) {
    const lines = block.split(/\r?\n/).filter((l) => /^[A-Za-z0-9+/=]+$/.test(l));
    if (lines.length === 0) continue;
    const m = Buffer.from(lines.join(''), 'base64').toString('utf8').match(pattern);
    if (m) return m[0];
  }
  return null;
}

let hub;
let browser;
let sink;
before(async () => {
  sink = await startSmtpSink();
  hub = await startHub({
    APPOINTMENT_TIME_ZONE: 'Europe/Berlin',
    SMTP_URL: `smtp://127.0.0.1:${sink.port}`,
    MAIL_FROM: 'desk@example.com',
    OUTBOX_POLL_SECS: '0.2',
  });
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await hub?.stop();
  sink?.stop();
});

/** The local date `days` from now, YYYY-MM-DD. */
function dayIn(days) {
  const d = new Date(Date.now() + days * 86400000);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

test('book a slot, open the cancel link from the mail, cancel it', async () => {
  await withShots('appointments', async (pages) => {
    await createAgent(hub, { username: 'rita', display_name: 'Rita', categories: ['general'] });
    const page = await newPage(browser, { width: 375, height: 740 });
    pages.push(page);

    await page.goto(`${hub.url}/book.html`);
    assert.equal(await page.locator('#day').getAttribute('min'), dayIn(0), 'no day before today');
    await page.locator('#day').fill(dayIn(2));
    await page.locator('#day').dispatchEvent('change');
    const slots = page.getByTestId('slot');
    await slots.first().waitFor();
    assert.equal(await slots.count(), 7, 'seven free slots');
    assert.equal(await page.getByTestId('desk-zone').textContent(), 'Europe/Berlin');
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 375, `fits a phone (scrollWidth ${width})`);
    // The topic (a category) is optional; picking one keeps the slots its representatives hold.
    assert.ok(await page.getByTestId('topic-select').locator('option[value="general"]').count() === 1, 'the categories are topics');
    await page.getByTestId('topic-select').selectOption('general');
    await slots.first().waitFor();
    assert.equal(await slots.count(), 7, 'seven free slots with general too');
    const start = await slots.first().getAttribute('data-start');

    await slots.first().click();
    await page.getByTestId('name-input').fill('Carla');
    await page.getByTestId('email-input').fill('not-an-address');
    await page.getByTestId('book-button').click();
    await page.getByTestId('book-error').filter({ hasText: 'email' }).waitFor();
    await page.getByTestId('email-input').fill('carla@example.com');
    await page.getByTestId('book-button').click();
    await page.getByTestId('done').waitFor();
    assert.match(await page.getByTestId('done-desk').textContent(), /10:00 Europe\/Berlin/);

    // The slot is gone from the list.
    const day = await apiCall(hub, 'GET', `/api/appointments/slots?date=${dayIn(2)}`);
    assert.equal(day.data.slots.find((s) => s.start === start).free, false);

    // The confirmation mail arrives; opening its cancel link shows the appointment and
    // cancels nothing.
    let link = null;
    for (let i = 0; i < 300 && !link; i += 1) {
      link = mails(sink).map(cancelLinkIn).find(Boolean) ?? null;
      if (!link) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(link, `the confirmation mail with a cancel link arrived (${mails(sink).length} mails)`);
    assert.ok(link.startsWith(hub.url), `${link} leads to this hub`);
    assert.equal(await page.getByTestId('cancel-link').getAttribute('href').then((h) => new URL(h, hub.url).search), new URL(link).search,
      'the page and the mail give the same link');
    await page.goto(link);
    await page.getByTestId('appointment').waitFor();
    assert.equal(await page.getByTestId('who').textContent(), 'Carla');
    const still = await apiCall(hub, 'GET', `/api/appointments/slots?date=${dayIn(2)}`);
    assert.equal(still.data.slots.find((s) => s.start === start).free, false, 'a GET of the link cancels nothing');

    await page.getByTestId('confirm-cancel').click();
    await page.getByTestId('state').filter({ hasText: 'Your appointment is cancelled.' }).waitFor();
    const freed = await apiCall(hub, 'GET', `/api/appointments/slots?date=${dayIn(2)}`);
    assert.equal(freed.data.slots.find((s) => s.start === start).free, true, 'the slot is free again');

    await page.reload();
    await page.getByTestId('state').filter({ hasText: 'This appointment is cancelled.' }).waitFor();
    assert.equal(await page.getByTestId('confirm-cancel').isHidden(), true);

    await page.goto(`${hub.url}/cancel.html?token=not-a-real-token`);
    await page.getByTestId('cancel-error').filter({ hasText: 'not valid' }).waitFor();
  });
});

test("the representative sees the day's appointments and cancels one with a second press", async () => {
  await withShots('appointments-agent', async (pages) => {
    const booked = await apiCall(hub, 'POST', '/api/appointments', {
      start: null, name: 'Dora', email: 'dora@example.com', comment: 'the blue one',
    });
    assert.equal(booked.status, 400, 'a booking needs its start');
    const day = await apiCall(hub, 'GET', `/api/appointments/slots?date=${dayIn(3)}`);
    const start = day.data.slots[2].start;
    const made = await apiCall(hub, 'POST', '/api/appointments', {
      start, name: 'Dora', email: 'dora@example.com', comment: 'the blue one',
    });
    assert.equal(made.status, 201, JSON.stringify(made.data));

    const page = await newPage(browser);
    pages.push(page);
    await agentSignsIn(page, hub, { username: 'rita', password: 'agent-password' }, { available: false });
    await page.getByTestId('appointments-link').click();
    await page.getByTestId('agent-zone').filter({ hasText: 'Europe/Berlin' }).waitFor();
    await page.getByTestId('no-appointments').waitFor();
    for (let i = 0; i < 3; i++) await page.getByTestId('later-day').click();
    const item = page.getByTestId('agent-appointment');
    await item.waitFor();
    const text = await item.textContent();
    assert.match(text, /12:00/);
    assert.match(text, /Dora/);
    assert.match(text, /dora@example\.com/);
    assert.match(text, /the blue one/);

    await page.getByTestId('cancel-appointment').click();
    assert.equal(await page.getByTestId('cancelled').count(), 0, 'one press only asks');
    await page.getByTestId('cancel-appointment').click();
    await page.getByTestId('cancelled').waitFor();
    const after = await apiCall(hub, 'GET', `/api/appointments/slots?date=${dayIn(3)}`);
    assert.equal(after.data.slots[2].free, true, 'the slot is free again');
  });
});

test('an admin sees every appointment and cancels one, which mails the customer', async () => {
  await withShots('appointments-admin', async (pages) => {
    const day = await apiCall(hub, 'GET', `/api/appointments/slots?date=${dayIn(4)}`);
    const start = day.data.slots[1].start;
    const made = await apiCall(hub, 'POST', '/api/appointments', {
      start, name: 'Erin', email: 'erin@example.com', comment: 'by the window',
    });
    assert.equal(made.status, 201, JSON.stringify(made.data));

    const page = await newPage(browser);
    pages.push(page);
    await page.goto(`${hub.url}/admin.html#appointments`);
    await page.getByTestId('username').fill('admin');
    await page.getByTestId('password').fill(ADMIN_PASSWORD);
    await page.getByTestId('password').press('Enter');
    await page.getByTestId('appointments-zone').filter({ hasText: 'Europe/Berlin' }).waitFor();
    const erin = page.getByTestId('admin-appointment').filter({ hasText: 'erin@example.com' });
    await erin.waitFor();
    const text = await erin.textContent();
    assert.match(text, /11:00/);
    assert.match(text, /rita/);
    assert.match(text, /by the window/);

    const cancel = erin.getByTestId('admin-cancel-appointment');
    await cancel.click();
    assert.equal(await erin.getByTestId('admin-appointment-status').textContent(), 'booked', 'one press only asks');
    await cancel.click();
    await page.getByTestId('admin-appointment').filter({ hasText: 'erin@example.com' })
      .getByTestId('admin-appointment-status').filter({ hasText: 'cancelled' }).waitFor();
    const after = await apiCall(hub, 'GET', `/api/appointments/slots?date=${dayIn(4)}`);
    assert.equal(after.data.slots[1].free, true, 'the slot is free again');

    // The customer gets the cancellation mail (METHOD:CANCEL).
    let cancelled = null;
    for (let i = 0; i < 300 && !cancelled; i += 1) {
      cancelled = mails(sink).find((m) => m.includes('erin@example.com') && m.includes('METHOD:CANCEL')) ?? null;
      if (!cancelled) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(cancelled, 'the cancellation mail reached the customer');
  });
});

// The page's first load waits for the topics; a day picked meanwhile starts a second. A
// CI run listed both answers side by side (14 slots where the day has 7): each free slot
// must show once, whichever answer comes last.
test('a day picked while the page is still loading lists its slots once', async () => {
  await withShots('appointments-slow-topics', async (pages) => {
    // A representative of its own, so the day has free slots whatever ran before.
    await createAgent(hub, { username: 'sam', display_name: 'Sam', categories: ['general'] });
    const page = await newPage(browser, { width: 375, height: 740 });
    pages.push(page);
    // The topics come a moment after the day is picked, and each day's answer takes a
    // second: the two loads are in flight together, as in that CI run.
    await page.route('**/api/categories', async (route) => {
      await new Promise((r) => setTimeout(r, 500));
      await route.continue();
    });
    await page.route('**/api/appointments/slots*', async (route) => {
      await new Promise((r) => setTimeout(r, 1000));
      await route.continue();
    });
    await page.goto(`${hub.url}/book.html`);
    await page.locator('#day').fill(dayIn(4));
    await page.locator('#day').dispatchEvent('change');
    const slots = page.getByTestId('slot');
    await slots.first().waitFor();
    // Both answers are in by then.
    await page.waitForTimeout(2500);
    const day = await (await fetch(`${hub.url}/api/appointments/slots?date=${dayIn(4)}`)).json();
    const free = day.slots.filter((s) => s.free).length;
    assert.ok(free > 0, 'the day has free slots');
    assert.equal(await slots.count(), free, 'each free slot listed once');
  });
});
