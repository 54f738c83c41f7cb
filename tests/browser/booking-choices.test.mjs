// The booking page's choices and forms, as a walk through it found them: the details
// checked in the page before any request, each error at its field; a topic changed after a
// time was chosen goes back to the times, topics nobody serves are not offered (the topics
// and who serves each one read, at desk and phone sizes), and once
// booked the topic and zone pickers are gone; on a phone the month is on the first screen;
// three months with nothing free say so on the first; an appointment that has begun is
// not offered to be moved; without SMTP_URL no confirmation mail is claimed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newPage, createAgent, withShots, apiCall, adminToken, shot, hubAndBrowser, startForFile } from './helpers.mjs';

let hub, browser;
startForFile(() => hubAndBrowser({ APPOINTMENT_TIME_ZONE: 'Europe/Berlin' }), (started) => ({ hub, browser } = started));

const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

/** A topic `id` served by a representative of its own (made once). */
const served = new Map();
async function servedTopic(id, name) {
  if (!served.has(id)) {
    await apiCall(hub, 'POST', '/api/admin/categories', { id, name }, await adminToken(hub));
    served.set(id, await createAgent(hub, { username: `rep-${id}`, display_name: `Rep ${name}`, categories: [id] }));
  }
  return served.get(id);
}

/** The booking page at `size`, its first free day's times listed. */
async function bookingPage(pages, size, query = '') {
  const page = await newPage(browser, size);
  pages.push(page);
  await page.goto(`${hub.url}/book.html${query}`);
  await page.getByTestId('slot').first().waitFor();
  return page;
}

/** What the page says at `field` (its error line), whether it is marked invalid, and
 *  whether it has the focus. */
async function atField(page, inputTestId) {
  return page.getByTestId(inputTestId).evaluate((input) => ({
    said: document.getElementById(`${input.id}-error`)?.textContent,
    invalid: input.getAttribute('aria-invalid'),
    describedBy: (input.getAttribute('aria-describedby') || '').split(' ').includes(`${input.id}-error`),
    focused: document.activeElement === input,
  }));
}

test('the details are checked before sending, and each error shows at its field', () => withShots('booking-fields', async (pages) => {
  await servedTopic('fields', 'Fields');
  const page = await bookingPage(pages, DESKTOP, '?category=fields');
  const posted = [];
  page.on('request', (r) => { if (r.method() === 'POST' && r.url().endsWith('/api/appointments')) posted.push(r.url()); });
  await page.getByTestId('slot').first().click();

  // Nothing given: no request; the first field says so, marked, described and focused.
  await page.getByTestId('book-button').click();
  assert.deepEqual(await atField(page, 'name-input'),
    { said: 'Please enter your name.', invalid: 'true', describedBy: true, focused: true });
  assert.equal((await atField(page, 'email-input')).said, 'Please enter your email address.');
  assert.equal(await page.getByTestId('book-error').textContent(), '', 'nothing under the form');
  assert.deepEqual(posted, [], 'no round trip for what the page can check');
  await shot(page, 'booking-fields-empty');

  // A name of spaces is no name; an email without "@" is no address.
  await page.getByTestId('name-input').fill('   ');
  await page.getByTestId('email-input').fill('carla');
  await page.getByTestId('book-button').click();
  assert.equal((await atField(page, 'name-input')).said, 'Please enter your name.');
  assert.equal((await atField(page, 'email-input')).said, 'Please enter an email address like name@example.com.');
  assert.deepEqual(posted, []);

  // One the server refuses (no dot in its domain): its message at the field, as a sentence.
  await page.getByTestId('name-input').fill('Carla');
  await page.getByTestId('email-input').fill('carla@localhost');
  await page.getByTestId('book-button').click();
  await page.getByTestId('email-error').filter({ hasText: /\S/ }).waitFor();
  const email = await atField(page, 'email-input');
  assert.equal(email.said, 'An email address like name@example.com is needed.');
  assert.equal(email.invalid, 'true');
  assert.equal(email.focused, true);
  assert.equal((await atField(page, 'name-input')).invalid, null, 'the name is fine now');
  assert.equal(posted.length, 1);

  await page.getByTestId('email-input').fill('carla@example.com');
  await page.getByTestId('book-button').click();
  await page.getByTestId('done').waitFor();
  // This hub has no SMTP_URL: the page claims no mail was sent.
  assert.equal(await page.getByTestId('sent-to').isVisible(), false);
  assert.equal(await page.getByTestId('not-mailed').isVisible(), true);
  assert.doesNotMatch(await page.locator('#about').textContent(), /confirmation mail/);
}));

test('a topic changed after a time was chosen goes back to the times; booked, the pickers are gone', () => withShots('booking-topic-change', async (pages) => {
  await servedTopic('first', 'First');
  await servedTopic('second', 'Second');
  // Nobody serves this one: it is not offered.
  await apiCall(hub, 'POST', '/api/admin/categories', { id: 'unserved', name: 'Unserved' }, await adminToken(hub));
  const page = await bookingPage(pages, DESKTOP);
  const offered = await page.getByTestId('topic-select').locator('option').evaluateAll((os) => os.map((o) => o.value));
  assert.ok(offered.includes('first') && offered.includes('second'), offered.join());
  assert.ok(!offered.includes('unserved'), `a topic nobody serves is not offered: ${offered.join()}`);

  await page.getByTestId('topic-select').selectOption('first');
  await page.getByTestId('slot').first().waitFor();
  await page.getByTestId('slot').first().click();
  await page.getByTestId('details').waitFor();
  // Another topic: its representatives may not be free then; the times are offered again.
  await page.getByTestId('topic-select').selectOption('second');
  await page.getByTestId('pick').waitFor();
  assert.equal(await page.getByTestId('details').isHidden(), true, 'the details step is left');
  await page.getByTestId('slot').first().waitFor();
  await page.getByTestId('slot').first().click();
  await page.getByTestId('name-input').fill('Dana');
  await page.getByTestId('email-input').fill('dana@example.com');
  await page.getByTestId('book-button').click();
  await page.getByTestId('done').waitFor();
  const booked = await page.getByTestId('cancel-link').getAttribute('href');
  const token = new URL(booked, hub.url).searchParams.get('token');
  const stored = await apiCall(hub, 'GET', `/api/appointments/booking?token=${token}`);
  assert.equal(stored.data.category, 'second');

  // Booked: nothing left to pick that would change nothing.
  assert.equal(await page.getByTestId('topic-select').isVisible(), false);
  assert.equal(await page.getByTestId('zone-select').isVisible(), false);
  assert.match(await page.getByTestId('about-title').textContent(), /Second/);
  await shot(page, 'booking-topic-done');
}));

for (const [label, size] of [['desk', DESKTOP], ['phone', PHONE]]) {
  test(`the topics, and who serves each, are one read however many there are (${label})`, () => withShots(`booking-topics-read-${label}`, async (pages) => {
    await servedTopic('first', 'First');
    await servedTopic('second', 'Second');
    await apiCall(hub, 'POST', '/api/admin/categories', { id: 'unserved', name: 'Unserved' }, await adminToken(hub));
    const categories = (await apiCall(hub, 'GET', '/api/categories')).data.map((c) => c.id);
    assert.ok(categories.length >= 3, categories.join());
    const page = await newPage(browser, size);
    pages.push(page);
    const asked = [];
    page.on('request', (r) => { const u = new URL(r.url()); if (u.pathname.startsWith('/api/')) asked.push(u); });
    await page.goto(`${hub.url}/book.html`);
    await page.getByTestId('slot').first().waitFor();
    const offered = await page.getByTestId('topic-select').locator('option').evaluateAll((os) => os.map((o) => o.value));
    assert.ok(offered.includes('first') && offered.includes('second') && !offered.includes('unserved'), offered.join());
    const read = (path) => asked.filter((u) => u.pathname === path);
    assert.equal(read('/api/appointments/topics').length + read('/api/categories').length, 1, asked.join('\n'));
    // The month's days are read for the topic shown ("Any"), not once per topic.
    const topic = await page.getByTestId('topic-select').inputValue();
    const days = read('/api/appointments/days');
    assert.ok(days.length >= 1, asked.join('\n'));
    assert.deepEqual(days.filter((u) => (u.searchParams.get('category') || '') !== topic).map(String), [], 'no month read per topic');
  }));
}

test('on a phone the month is on the first screen', () => withShots('booking-phone-first-screen', async (pages) => {
  await servedTopic('phone', 'Phone');
  const page = await bookingPage(pages, PHONE, '?category=phone');
  const days = await page.getByTestId('days').boundingBox();
  assert.ok(days.y + days.height <= PHONE.height, `the whole month is in view: ${JSON.stringify(days)}`);
  // ...and the chosen day's first time starts on it too, not below the fold.
  const time = await page.getByTestId('slot').first().boundingBox();
  assert.ok(time.y < PHONE.height, `the first time starts on the first screen: ${JSON.stringify(time)}`);
  await shot(page, 'booking-phone-first-screen', { fullPage: false });
}));

test('three months with nothing free: the first is shown, saying nothing is free', () => withShots('booking-nothing-free', async (pages) => {
  await servedTopic('none', 'None');
  const page = await newPage(browser, DESKTOP);
  pages.push(page);
  // The page's clock half a year back: the three months it looks at are over.
  const now = new Date();
  const then = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 6, 10, 12));
  await page.clock.setFixedTime(then);
  await page.goto(`${hub.url}/book.html?category=none`);
  const notice = page.getByTestId('nothing-free');
  await notice.filter({ hasText: /\S/ }).waitFor();
  const first = new Intl.DateTimeFormat('en-GB', { month: 'long', year: 'numeric', timeZone: 'UTC' }).format(then);
  assert.match(await notice.textContent(), new RegExp(`^Nothing is free from ${first} to .+\\. Please come back later\\.$`));
  assert.equal(await page.getByTestId('month-label').textContent(), await page.evaluate(
    (at) => new Intl.DateTimeFormat([], { month: 'long', year: 'numeric', timeZone: 'UTC' }).format(new Date(at)), then.getTime()));
  assert.equal(await page.getByTestId('free-day').count(), 0);
  await shot(page, 'booking-nothing-free');
}));

test('an appointment that has begun is not offered to be moved', () => withShots('booking-begun', async (pages) => {
  await servedTopic('begun', 'Begun');
  const day = await apiCall(hub, 'GET', '/api/appointments/slots?date=' + new Date(Date.now() + 3 * 86400000).toISOString().slice(0, 10) + '&category=begun');
  const slot = day.data.slots.find((s) => s.free);
  const made = await apiCall(hub, 'POST', '/api/appointments', { start: slot.start, name: 'Eve', email: 'eve@example.com', category: 'begun' });
  assert.equal(made.status, 201, JSON.stringify(made.data));
  const page = await newPage(browser, DESKTOP);
  pages.push(page);
  // The server's clock (its answer's Date) past the start, as when the call has begun.
  await page.route('**/api/appointments/booking?*', async (route) => {
    const response = await route.fetch();
    const later = new Date(Date.parse(slot.start) + 5 * 60000).toUTCString();
    await route.fulfill({ response, headers: { ...response.headers(), date: later } });
  });
  await page.goto(`${hub.url}${made.data.links.reschedule.replace(/^https?:\/\/[^/]+/, '')}`);
  await page.getByTestId('reschedule-error').filter({ hasText: 'already begun' }).waitFor();
  assert.equal(await page.getByTestId('pick').isVisible(), false, 'no times to pick');
  assert.equal(await page.getByTestId('book-new').isVisible(), true);
  await shot(page, 'booking-begun');
}));
