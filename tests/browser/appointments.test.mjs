// Appointments: a customer in another time zone books from the month view (times in
// their zone, the desk's beside), gets the confirmation MAIL (a real SMTP sink, aiosmtpd
// from .venv) in their zone, opens its link to the appointment's page (which changes
// nothing), reschedules (one mail) and cancels (which asks first, with a reason). The
// pages at desktop and phone sizes; a desk nobody serves; staff views.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newPage, createAgent, agentSignsIn, withShots, apiCall, adminToken, shot, decodedMail, openPages, adminSignsIn, hubBrowserAndMail, startForFile } from './helpers.mjs';

/** The appointment's link (manage page) in a mail `waitForMails` decoded already. (Decoding it
 *  again read a token's `=BC…` as a quoted-printable byte: a token starting with two
 *  upper-case hex digits, one in 16, failed the test.) */
function manageLinkIn(text) {
  const found = text.match(/https?:\/\/[^\s"<>]*\/manage\.html\?token=[A-Za-z0-9_-]+/);
  return found ? found[0] : null;
}

/** Waits for the mails (decoded) that `pick` keeps, at least `n` of them. */
async function waitForMails(sink, pick, n = 1) {
  for (let i = 0; i < 300; i += 1) {
    const found = sink.mails().map(decodedMail).filter(pick);
    if (found.length >= n) return found;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`fewer than ${n} matching mails arrived (${sink.mails().length} mails in all)`);
}

/** `iso` as the page shows a time in `zone` (the browser's locale: 12 or 24 hours). */
const shownTime = (page, iso, zone) => page.evaluate(([at, z]) => new Intl.DateTimeFormat([], { timeZone: z, hour: '2-digit', minute: '2-digit' })
  .format(new Date(at)), [iso, zone]);

/** The date `days` from now in `zone`, YYYY-MM-DD. */
const dateIn = (days, zone) => new Intl.DateTimeFormat('en-CA', { timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit' })
  .format(new Date(Date.now() + days * 86400000));

/** Clicks the free day `date` of the month view, turning to its month first. A month's
 *  days are drawn only once its free days have arrived, so the month shown is read from
 *  the days' own dates, never from the label (which changes before the fetch returns). */
async function pickDay(page, date) {
  const month = date.slice(0, 7);
  const shownMonth = () => page.evaluate(() => document.querySelector('#days [data-date]')?.dataset.date.slice(0, 7));
  await page.getByTestId('free-day').first().waitFor();
  for (let i = 0; i < 3; i += 1) {
    const shown = await shownMonth();
    if (shown === month) {
      const day = page.locator(`[data-testid="free-day"][data-date="${date}"]`);
      if (await day.count() !== 1) break;
      await day.click();
      return;
    }
    await page.getByTestId('next-month').click();
    await page.waitForFunction((before) => document.querySelector('#days [data-date]')?.dataset.date.slice(0, 7) !== before, shown);
  }
  throw new Error(`${date} is not a free day`);
}

/** An appointment booked through the API in the `slot`th slot `days` from today, for
 *  `customer` (name, email, comment): the slot's start and the booking's answer. */
async function bookedThroughTheApi(days, slot, customer) {
  const day = await apiCall(hub, 'GET', `/api/appointments/slots?date=${dayIn(days)}`);
  const start = day.data.slots[slot].start;
  const made = await apiCall(hub, 'POST', '/api/appointments', { start, ...customer });
  assert.equal(made.status, 201, JSON.stringify(made.data));
  return { start, made };
}

/** Disables `agent`: a representative a test made for itself takes no booking the file's
 *  later tests make without a topic (any representative may be assigned those). */
async function retire(agent) {
  const res = await apiCall(hub, 'PATCH', `/api/admin/agents/${agent.id}`, { enabled: false }, await adminToken(hub));
  assert.equal(res.status, 200, JSON.stringify(res.data));
}

let hub, browser, sink;
startForFile(() => hubBrowserAndMail({ APPOINTMENT_TIME_ZONE: 'Europe/Berlin', MAIL_FROM: 'desk@example.com', OUTBOX_POLL_SECS: '0.2' }),
  (started) => ({ hub, browser, sink } = started));

/** The local date `days` from now, YYYY-MM-DD. */
function dayIn(days) {
  const d = new Date(Date.now() + days * 86400000);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

test('a customer in New York books from the month view; page and mail give New York times; reschedule mails once; cancel asks first', async () => {
  await withShots('appointments', async (pages) => {
    const NY = 'America/New_York';
    await createAgent(hub, { username: 'rita', display_name: 'Rita Berg', categories: ['general'] });
    const page = await newPage(browser, { width: 1280, height: 800 }, { timezoneId: NY });
    pages.push(page);

    await page.goto(`${hub.url}/book.html`);
    await page.getByTestId('free-day').first().waitFor();
    assert.equal(await page.getByTestId('zone-select').inputValue(), NY, "the browser's zone is picked");
    // Named with its offset and the time there, as a customer finds theirs by their clock.
    await page.waitForFunction(() => document.querySelector('#zone option:checked').textContent.includes('GMT'));
    assert.match(await page.locator('#zone option:checked').textContent(), /^America\/New York · GMT-[45] · \d\d:\d\d$/);
    assert.equal(await page.getByTestId('desk-zone').textContent(), 'Europe/Berlin');
    assert.equal(await page.getByTestId('slot-length').textContent(), '60 min');
    await pickDay(page, dateIn(2, NY));
    const slots = page.getByTestId('slot');
    await slots.first().waitFor();
    const start = await slots.first().getAttribute('data-start');
    const nyStart = await shownTime(page, start, NY);
    assert.equal(await slots.first().textContent(), nyStart, 'times in New York');
    assert.notEqual(nyStart, await shownTime(page, start, 'Europe/Berlin'), "not the desk's times");
    await shot(page, 'booking-desktop');

    await slots.first().click();
    assert.equal(await page.getByTestId('chosen-desk').textContent(),
      `${await shownTime(page, start, 'Europe/Berlin')} Europe/Berlin at the desk · 60 min`);
    await page.getByTestId('name-input').fill('Carla');
    await page.getByTestId('email-input').fill('not-an-address');
    await page.getByTestId('book-button').click();
    // Checked in the page, said at the field.
    await page.getByTestId('email-error').filter({ hasText: 'Please enter an email address like name@example.com.' }).waitFor();
    assert.equal(await page.getByTestId('email-input').getAttribute('aria-invalid'), 'true');
    await page.getByTestId('email-input').fill('carla@example.com');
    await page.getByTestId('comment-input').fill('about my order');
    await page.getByTestId('book-button').click();
    await page.getByTestId('done').waitFor();
    assert.match(await page.getByTestId('done-when').textContent(), /America\/New York/);
    assert.equal(await page.getByTestId('done-email').textContent(), 'carla@example.com');
    // The desk mails (SMTP_URL is set): the page says where the confirmation went.
    assert.equal(await page.getByTestId('sent-to').isVisible(), true);
    assert.equal(await page.getByTestId('not-mailed').isVisible(), false);
    assert.match(await page.getByTestId('add-google').getAttribute('href'), /^https:\/\/calendar\.google\.com\//);
    assert.match(await page.getByTestId('add-outlook').getAttribute('href'), /^https:\/\/outlook\.live\.com\//);
    const ics = await fetch(new URL(await page.getByTestId('add-ics').getAttribute('href'), hub.url));
    assert.equal(ics.status, 200);
    assert.match(await ics.text(), /SUMMARY:Video call with Rita Berg/);
    await shot(page, 'booking-done-desktop');

    // The slot is held; the mail gives New York's time, the desk's beside it, each written
    // as this page wrote it (this browser's locale: 12 or 24 hours).
    const held = await apiCall(hub, 'GET', `/api/appointments/slots?date=${start.slice(0, 10)}&zone=UTC`);
    assert.equal(held.data.slots.find((s) => s.start === start).free, false);
    const [confirmation] = await waitForMails(sink, (m) => m.includes('carla@example.com') && m.includes('METHOD:REQUEST'));
    const deskStart = await shownTime(page, start, 'Europe/Berlin');
    assert.ok(confirmation.includes(`${nyStart}–`) && confirmation.includes('(America/New_York)'),
      `the time in New York as the page gave it (${nyStart}):\n${confirmation}`);
    assert.ok(confirmation.includes(`${deskStart}–`) && confirmation.includes('Europe/Berlin at the desk'),
      `the desk's time as the page gave it (${deskStart}):\n${confirmation}`);
    // (Header lines folded by the mail library are unfolded first.)
    assert.match(confirmation.replace(/\r?\n(?=[ \t])/g, ''), /Subject: Confirmed: Video call with Rita Berg on .*\(America\/New_York\)/);
    const link = manageLinkIn(confirmation);
    assert.ok(link?.startsWith(hub.url), `${link} leads to this hub; the mail:\n${confirmation}`);
    assert.equal(new URL(await page.getByTestId('cancel-link').getAttribute('href'), hub.url).search, new URL(link).search,
      'the page and the mail give the same link');

    // The appointment's page shows what was booked; opening it changes nothing.
    await page.goto(link);
    await page.getByTestId('appointment').waitFor();
    assert.equal(await page.getByTestId('who').textContent(), 'Carla');
    assert.equal(await page.getByTestId('email').textContent(), 'carla@example.com');
    assert.equal(await page.getByTestId('comment').textContent(), 'about my order');
    const when = await page.getByTestId('when').textContent();
    assert.ok(when.includes(nyStart) && when.endsWith('(America/New York)'), when);
    assert.equal(await page.getByTestId('join-appointment').isVisible(), true);
    await shot(page, 'manage-desktop');

    // Reschedule: the booking page in reschedule mode, another slot, mailed once.
    await page.getByTestId('reschedule-link').click();
    await page.getByTestId('current-booking').waitFor();
    await pickDay(page, dateIn(5, NY));
    await slots.nth(1).waitFor();
    const later = await slots.nth(1).getAttribute('data-start');
    await slots.nth(1).click();
    assert.equal(await page.getByTestId('name-input').isVisible(), false, 'no details asked again');
    await page.getByTestId('book-button').click();
    await page.getByTestId('done-title').filter({ hasText: 'moved' }).waitFor();
    // The card beside says the new time, not the old; focus is on the outcome.
    assert.ok((await page.getByTestId('current-when').textContent()).includes(await shownTime(page, later, NY)),
      await page.getByTestId('current-when').textContent());
    assert.equal(await page.evaluate(() => document.activeElement?.dataset.testid), 'done-title');
    const before = await apiCall(hub, 'GET', `/api/appointments/slots?date=${start.slice(0, 10)}&zone=UTC`);
    assert.equal(before.data.slots.find((s) => s.start === start).free, true, 'the old slot is free');
    const after = await apiCall(hub, 'GET', `/api/appointments/slots?date=${later.slice(0, 10)}&zone=UTC`);
    assert.equal(after.data.slots.find((s) => s.start === later).free, false, 'the new slot is held');
    const [moved] = await waitForMails(sink, (m) => m.includes('carla@example.com') && m.includes('Subject: Rescheduled:'));
    assert.match(moved, /SEQUENCE:1/);
    assert.ok(moved.includes(`${await shownTime(page, later, NY)}–`), `the new time as the page gives it:\n${moved}`);
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(sink.mails().map(decodedMail).filter((m) => m.includes('carla@example.com') && m.includes('Subject: Rescheduled:')).length, 1,
      'mailed once');

    // Cancel asks first: "Keep it" changes nothing; "Yes, cancel it" with a reason cancels.
    await page.goto(link);
    await page.getByTestId('appointment').waitFor();
    await page.getByTestId('ask-cancel').click();
    await page.getByTestId('confirm-box').waitFor();
    assert.equal((await apiCall(hub, 'GET', `/api/appointments/booking?token=${new URL(link).searchParams.get('token')}`)).data.status,
      'booked', 'asking cancels nothing');
    await shot(page, 'manage-confirm-cancel');
    await page.getByTestId('keep-appointment').click();
    assert.equal(await page.getByTestId('confirm-box').isHidden(), true);
    await page.getByTestId('ask-cancel').click();
    await page.getByTestId('cancel-reason-input').fill('I found the answer myself');
    await page.getByTestId('confirm-cancel').click();
    await page.getByTestId('state').filter({ hasText: 'Your appointment is cancelled.' }).waitFor();
    await page.getByTestId('book-again').waitFor();
    const freed = await apiCall(hub, 'GET', `/api/appointments/slots?date=${later.slice(0, 10)}&zone=UTC`);
    assert.equal(freed.data.slots.find((s) => s.start === later).free, true, 'the slot is free again');
    const [cancelled] = await waitForMails(sink, (m) => m.includes('carla@example.com') && m.includes('METHOD:CANCEL'));
    assert.match(cancelled, /Reason: I found the answer myself/);
    assert.match(cancelled, new RegExp(`book another one:\\s+${hub.url.replace(/[.]/g, '\\.')}/book\\.html`));

    await page.reload();
    await page.getByTestId('state').filter({ hasText: 'This appointment is cancelled.' }).waitFor();
    assert.equal(await page.getByTestId('ask-cancel').isVisible(), false);

    await page.goto(`${hub.url}/manage.html?token=not-a-real-token`);
    await page.getByTestId('load-error').filter({ hasText: 'not valid' }).waitFor();
    // Older mails' links forward to the appointment's page.
    await page.goto(`${hub.url}/cancel.html?token=not-a-real-token`);
    await page.getByTestId('load-error').filter({ hasText: 'not valid' }).waitFor();
    assert.match(page.url(), /\/manage\.html\?token=not-a-real-token$/);
  });
});

test('booking and the appointment page on a phone', async () => {
  await withShots('appointments-phone', async (pages) => {
    const page = await newPage(browser, { width: 390, height: 844 }, { timezoneId: 'Asia/Tokyo' });
    pages.push(page);
    await page.goto(`${hub.url}/book.html`);
    await page.getByTestId('free-day').first().waitFor();
    // Days ahead, clear of the days the staff tests below look at.
    await pickDay(page, dateIn(6, 'Asia/Tokyo'));
    await page.getByTestId('slot').first().waitFor();
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 390, `fits a phone (scrollWidth ${width})`);
    await shot(page, 'booking-phone');
    await page.getByTestId('slot').first().click();
    await page.getByTestId('name-input').fill('Ida');
    await page.getByTestId('email-input').fill('ida@example.com');
    await page.getByTestId('book-button').click();
    await page.getByTestId('done').waitFor();
    assert.match(await page.getByTestId('done-when').textContent(), /Asia\/Tokyo/);
    await shot(page, 'booking-done-phone');
    await page.getByTestId('cancel-link').click();
    await page.getByTestId('appointment').waitFor();
    const manageWidth = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(manageWidth <= 390, `fits a phone (scrollWidth ${manageWidth})`);
    await shot(page, 'manage-phone');
  });
});

test('a desk nobody serves yet says so on the booking page', async () => {
  await withShots('appointments-nobody', async (pages) => {
    const [page] = await openPages(browser, pages, 1);
    // A category no agent holds: nobody serves it.
    const admin = await adminToken(hub);
    await apiCall(hub, 'POST', '/api/admin/categories', { id: 'orphans', name: 'Orphans' }, admin);
    await page.goto(`${hub.url}/book.html?category=orphans`);
    await page.getByTestId('no-representative').waitFor();
    assert.equal(await page.getByTestId('free-day').count(), 0);
    await shot(page, 'booking-nobody');
  });
});

test('the booking page opens on the first month with a free day, turning past months with nothing left', async () => {
  await withShots('appointments-seek', async (pages) => {
    const [page] = await openPages(browser, pages, 1);
    // A topic of its own, served by a representative of its own.
    await apiCall(hub, 'POST', '/api/admin/categories', { id: 'seeking', name: 'Seeking' }, await adminToken(hub));
    const sina = await createAgent(hub, { username: 'sina', display_name: 'Sina Roth', categories: ['seeking'] });
    // The page's clock a month back: the month it opens on is over (nothing free), as a
    // month is at its end, and the next may be too (today at a month's end, late).
    const now = new Date();
    await page.clock.setFixedTime(new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 15, 12)));
    await page.goto(`${hub.url}/book.html?category=seeking`);
    const zone = await page.evaluate(() => Intl.DateTimeFormat().resolvedOptions().timeZone);
    // The first month from the real today with a free day, as the server tells it.
    let expected = null;
    for (let ahead = 0; ahead < 2 && !expected; ahead += 1) {
      const first = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + ahead, 1));
      const month = first.toISOString().slice(0, 7);
      const days = await apiCall(hub, 'GET', `/api/appointments/days?month=${month}&zone=${encodeURIComponent(zone)}&category=seeking`);
      assert.equal(days.status, 200, JSON.stringify(days.data));
      if (days.data.free_days.length > 0) expected = { month, day: days.data.free_days[0] };
    }
    assert.ok(expected, 'a free day within two months');
    await page.getByTestId('free-day').first().waitFor();
    const shown = await page.evaluate(() => document.querySelector('#days [data-date]').dataset.date.slice(0, 7));
    assert.equal(shown, expected.month);
    // Its first free day is picked, and its times listed.
    await page.locator(`[data-testid="free-day"][data-date="${expected.day}"][aria-pressed="true"]`).waitFor();
    await page.locator('#slots button').first().waitFor();
    assert.equal(await page.getByTestId('slots-error').textContent(), '');
    await shot(page, 'booking-seek');
    await retire(sina);
  });
});

test('"Join" pressed days early says when the call is and from when it opens, and waits for nothing', async () => {
  await withShots('appointments-early', async (pages) => {
    await apiCall(hub, 'POST', '/api/admin/categories', { id: 'early', name: 'Early' }, await adminToken(hub));
    const ella = await createAgent(hub, { username: 'ella', display_name: 'Ella Kern', categories: ['early'] });
    const date = dayIn(3);
    const day = await apiCall(hub, 'GET', `/api/appointments/slots?date=${date}&category=early`);
    const start = day.data.slots.find((s) => s.free).start;
    const made = await apiCall(hub, 'POST', '/api/appointments', { start, name: 'Carla', email: 'carla@example.com', category: 'early' });
    assert.equal(made.status, 201, JSON.stringify(made.data));

    const [page] = await openPages(browser, pages, [{ width: 390, height: 844 }]);
    const asks = [];
    page.on('request', (r) => { if (r.url().endsWith('/api/appointments/join')) asks.push(r.url()); });
    await page.goto(`${hub.url}${made.data.cancel_url}`);
    await page.getByTestId('appointment').waitFor();
    await page.getByTestId('join-appointment').click();
    const text = page.getByTestId('waiting-text');
    await text.filter({ hasText: 'Come back from' }).waitFor();
    const weekday = await page.evaluate((at) => new Intl.DateTimeFormat([], { weekday: 'long', day: 'numeric', month: 'long' }).format(new Date(at)), start);
    assert.match(await text.textContent(), new RegExp(`^Your call with Ella Kern is on ${weekday} at .+\\. Come back from .+: the call opens then\\.$`));
    assert.equal(await page.getByTestId('join-appointment').isEnabled(), true);
    assert.deepEqual(asks, [], 'not put in the waiting room days ahead');
    await shot(page, 'manage-join-early-phone');
    await retire(ella);
  });
});

test("the representative sees the day's appointments and cancels one with a second press", async () => {
  await withShots('appointments-agent', async (pages) => {
    const booked = await apiCall(hub, 'POST', '/api/appointments', {
      start: null, name: 'Dora', email: 'dora@example.com', comment: 'the blue one',
    });
    assert.equal(booked.status, 400, 'a booking needs its start');
    const { start, made } = await bookedThroughTheApi(3, 2, { name: 'Dora', email: 'dora@example.com', comment: 'the blue one' });

    const [page] = await openPages(browser, pages, 1);
    await agentSignsIn(page, hub, { username: 'rita', password: 'agent-password' }, { available: false });
    await page.getByTestId('appointments-link').click();
    await page.getByTestId('agent-zone').filter({ hasText: 'Europe/Berlin' }).waitFor();
    await page.getByTestId('no-appointments').waitFor();
    for (let i = 0; i < 3; i++) await page.getByTestId('later-day').click();
    // Dora's: the New York customer's booking may fall on the same desk day (between
    // midnight in Berlin and midnight in New York, "two days on" there is three here).
    const item = page.getByTestId('agent-appointment').filter({ hasText: 'Dora' });
    await item.waitFor();
    const text = await item.textContent();
    assert.match(text, /12:00/);
    assert.match(text, /Dora/);
    assert.match(text, /dora@example\.com/);
    assert.match(text, /the blue one/);

    await item.getByTestId('cancel-appointment').click();
    assert.equal(await item.getByTestId('cancelled').count(), 0, 'one press only asks');
    await item.getByTestId('cancel-appointment').click();
    await item.getByTestId('cancelled').waitFor();
    const after = await apiCall(hub, 'GET', `/api/appointments/slots?date=${dayIn(3)}`);
    assert.equal(after.data.slots[2].free, true, 'the slot is free again');
  });
});

test('an admin sees every appointment and cancels one, which mails the customer', async () => {
  await withShots('appointments-admin', async (pages) => {
    const { start, made } = await bookedThroughTheApi(4, 1, { name: 'Erin', email: 'erin@example.com', comment: 'by the window' });

    const [page] = await openPages(browser, pages, 1);
    await adminSignsIn(page, hub, 'appointments', { enter: true });
    await page.getByTestId('appointments-zone').filter({ hasText: 'Europe/Berlin' }).waitFor();
    const erin = page.getByTestId('admin-appointment').filter({ hasText: 'erin@example.com' });
    await erin.waitFor();
    const text = await erin.textContent();
    assert.match(text, /11:00/);
    // Whoever the booking assigned (the file's other tests add representatives).
    assert.ok(text.includes(made.data.representative), `${made.data.representative} in ${text}`);
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
      cancelled = sink.mails().find((m) => m.includes('erin@example.com') && m.includes('METHOD:CANCEL')) ?? null;
      if (!cancelled) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(cancelled, 'the cancellation mail reached the customer');
  });
});

// The page's first load waits for the topics; a day picked meanwhile starts a second. A
// CI run listed both answers side by side: each free slot must show once, whichever
// answer comes last.
test('a day picked while the page is still loading lists its slots once', async () => {
  await withShots('appointments-slow-topics', async (pages) => {
    // A representative of its own, so the days have free slots whatever ran before.
    await createAgent(hub, { username: 'sam', display_name: 'Sam', categories: ['general'] });
    const page = await newPage(browser, { width: 375, height: 740 }, { timezoneId: 'UTC' });
    pages.push(page);
    await page.route('**/api/appointments/slots*', async (route) => {
      await new Promise((r) => setTimeout(r, 1000));
      await route.continue();
    });
    // The slot requests not yet answered: the list is judged once every answer is in.
    const unanswered = new Set();
    page.on('request', (r) => { if (r.url().includes('/api/appointments/slots')) unanswered.add(r); });
    page.on('response', (r) => unanswered.delete(r.request()));
    await page.goto(`${hub.url}/book.html`);
    await page.getByTestId('free-day').first().waitFor();
    const days = page.getByTestId('free-day');
    // At a month's end this month may hold one free day: the next month then, whose first
    // free day's slots the page asks for as it did this month's.
    if (await days.count() < 2) {
      const month = await page.getByTestId('month-label').textContent();
      await page.getByTestId('next-month').click();
      await page.waitForFunction((was) => document.querySelector('#month-label').textContent !== was, month);
      await days.nth(1).waitFor();
    }
    // The first free day's slots are on their way; another day is picked meanwhile.
    const other = await days.nth(1).getAttribute('data-date');
    await days.nth(1).click();
    const slots = page.getByTestId('slot');
    await slots.first().waitFor();
    while (unanswered.size > 0) await page.waitForEvent('response');
    // The last answer, had it been added to the list, is on screen within a moment of arriving.
    await page.waitForTimeout(300);
    const day = await (await fetch(`${hub.url}/api/appointments/slots?date=${other}&zone=UTC`)).json();
    const free = day.slots.filter((s) => s.free).length;
    assert.ok(free > 0, 'the day has free slots');
    assert.equal(await slots.count(), free, 'each free slot listed once');
  });
});

// On a phone the month view fills the screen and the times come below it: a tapped day
// must bring its times into view, with focus on them (the day's button is drawn anew, and
// focus fell back to the page). On a desktop the times sit beside the month: focus stays
// on the day.
test('tapping a day on a phone brings its times into view and focus to them; on a desktop focus stays on the day', async () => {
  await withShots('appointments-day-tap', async (pages) => {
    for (const [size, viewport] of [['phone', { width: 390, height: 844 }], ['desktop', { width: 1280, height: 860 }]]) {
      const page = await newPage(browser, viewport, { timezoneId: 'UTC', hasTouch: size === 'phone', isMobile: size === 'phone' });
      pages.push(page);
      await page.goto(`${hub.url}/book.html`);
      // Any free day of the month shown: which days are free depends on the weekday and on
      // what the tests before booked.
      await page.getByTestId('free-day').first().waitFor();
      const date = await page.getByTestId('free-day').last().getAttribute('data-date');
      await pickDay(page, date);
      // The chosen day's times (in UTC, the page's zone here, a slot starts on that date).
      const first = page.locator(`[data-testid="slot"][data-start^="${date}"]`).first();
      await first.waitFor();
      // Scrolling to the times is smooth (unless reduced motion is asked for): let it end.
      await page.waitForFunction(() => new Promise((resolve) => {
        let last = window.scrollY;
        setTimeout(() => resolve(window.scrollY === last), 150);
      }));
      const focused = await page.evaluate(() => ({ testid: document.activeElement?.dataset.testid, date: document.activeElement?.dataset.date }));
      if (size === 'phone') {
        const box = await first.boundingBox();
        assert.ok(box.y >= 0 && box.y + box.height <= viewport.height, `the first time is on screen: ${JSON.stringify(box)} in ${viewport.height} px`);
        assert.equal(focused.testid, 'slot', 'focus is on the times');
        const label = page.getByTestId('day-label');
        const heading = await label.boundingBox();
        assert.ok(heading.y >= 0, `the day's heading is on screen above them: ${JSON.stringify(heading)}`);
      } else {
        assert.deepEqual(focused, { testid: 'free-day', date }, 'focus stays on the chosen day');
      }
      await shot(page, `booking-day-tapped-${size}`);
    }
  });
});
