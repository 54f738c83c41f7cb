// The booking page's time-zone search and the desk's bookable weekdays: typing above the
// zone picker filters its zones (by place, long name or offset), Enter picks the first
// found and the arrow goes on to the list; the browser's zone stays picked until then.
// An admin who closes the weekend (the admin API's `days`) leaves no Saturday or Sunday
// with times on the month.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newPage, createAgent, withShots, apiCall, adminToken, shot, hubAndBrowser, startForFile } from './helpers.mjs';

let hub, browser;
startForFile(async () => {
  const started = await hubAndBrowser({ APPOINTMENT_TIME_ZONE: 'Europe/Berlin' });
  await createAgent(started.hub, { username: 'rep', display_name: 'Rep', categories: ['general'] });
  return started;
}, (started) => ({ hub, browser } = started));

const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

/** The zones the picker offers now, without the one kept as chosen. */
const offered = (page) => page.locator('#zone optgroup:not([label="Chosen"]) option')
  .evaluateAll((options) => options.map((o) => o.value));

test('typing above the zone picker filters its zones; Enter picks the first found', () => withShots('booking-zone-search', async (pages) => {
  for (const size of [DESKTOP, PHONE]) {
    const page = await newPage(browser, size, { timezoneId: 'America/New_York', locale: 'en-US' });
    pages.push(page);
    await page.goto(`${hub.url}/book.html`);
    await page.getByTestId('slot').first().waitFor();
    // Labels (offset and time) come once the page is idle; the search then finds by them.
    await page.waitForFunction(() => document.querySelector('#zone option:checked').textContent.includes('GMT'));
    assert.equal(await page.getByTestId('zone-select').inputValue(), 'America/New_York');
    assert.ok((await offered(page)).length > 300, 'every zone before a search');
    assert.deepEqual(await page.locator('#zone optgroup').evaluateAll((g) => g.slice(0, 2).map((x) => x.label)), ['Africa', 'America']);

    const search = page.getByTestId('zone-search');
    assert.equal(await search.getAttribute('aria-label'), 'Find a time zone');
    await search.fill('tokyo');
    assert.deepEqual(await offered(page), ['Asia/Tokyo']);
    // The chosen zone stays shown (first, as "Chosen") until another is picked.
    assert.equal(await page.getByTestId('zone-select').inputValue(), 'America/New_York');
    assert.match(await page.getByTestId('zone-count').textContent(), /^1 time zone matches; Enter picks Asia\/Tokyo · GMT\+9 · \d\d:\d\d\.$/);
    const asked = page.waitForRequest((r) => r.url().includes('/api/appointments/days') && r.url().includes('zone=Asia%2FTokyo'));
    await search.press('Enter');
    await asked;
    assert.equal(await page.getByTestId('zone-select').inputValue(), 'Asia/Tokyo');
    assert.match(await page.getByTestId('zone-count').textContent(), /^Time zone: Asia\/Tokyo/);

    // By its long name, and by offset as a whole (GMT+1 finds no GMT+10 or GMT+11).
    await search.fill('central european');
    assert.ok((await offered(page)).includes('Europe/Berlin'), 'Central European Time');
    await search.fill('gmt+1');
    const plusOne = await page.locator('#zone optgroup:not([label="Chosen"]) option').allTextContents();
    assert.ok(plusOne.length > 0 && plusOne.every((label) => label.includes(' · GMT+1 · ')), plusOne.join('\n'));
    await search.fill('atlantis');
    assert.equal(await page.getByTestId('zone-count').textContent(), 'No time zone matches “atlantis”.');
    assert.deepEqual(await offered(page), []);
    // The arrow goes on from the search to the list; nothing is picked by the search alone.
    await search.fill('new york');
    await search.press('ArrowDown');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'zone');
    assert.equal(await page.getByTestId('zone-select').inputValue(), 'Asia/Tokyo');
    await page.getByTestId('zone-select').selectOption('America/New_York');
    assert.equal(await page.getByTestId('zone-select').inputValue(), 'America/New_York');
    // On a phone the search and the list fit the screen.
    const wide = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(wide <= size.width, `no sideways scroll: ${wide}`);
    await search.fill('gmt+1');
    await shot(page, `booking-zone-search-${size === PHONE ? 'phone' : 'desk'}`, { fullPage: false });
  }
}));

test('a closed weekday shows no times', () => withShots('booking-closed-weekend', async (pages) => {
  const token = await adminToken(hub);
  const set = await apiCall(hub, 'PUT', '/api/admin/appointment-hours',
    { open: '10:00', close: '17:00', days: ['mon', 'tue', 'wed', 'thu', 'fri'] }, token);
  assert.deepEqual(set.data.days, ['mon', 'tue', 'wed', 'thu', 'fri'], JSON.stringify(set));
  try {
    const page = await newPage(browser, DESKTOP, { timezoneId: 'Europe/Berlin' });
    pages.push(page);
    await page.goto(`${hub.url}/book.html`);
    await page.getByTestId('slot').first().waitFor();
    const weekdayOf = (date) => new Date(`${date}T12:00:00Z`).getUTCDay();
    const free = await page.getByTestId('free-day').evaluateAll((days) => days.map((d) => d.dataset.date));
    assert.ok(free.length > 0, 'weekdays are free');
    assert.deepEqual(free.filter((d) => [0, 6].includes(weekdayOf(d))), [], 'no weekend day is free');
    const closed = await page.getByTestId('day').evaluateAll((days) => days.map((d) => d.dataset.date));
    const weekend = closed.filter((d) => [0, 6].includes(weekdayOf(d)));
    assert.ok(weekend.length >= 8, `every Saturday and Sunday is marked nothing free: ${weekend}`);
    for (const date of weekend.slice(0, 2)) {
      const day = page.locator(`[data-date="${date}"]`);
      assert.equal(await day.isDisabled(), true);
      assert.match(await day.getAttribute('aria-label'), /, nothing free$/);
      const slots = await apiCall(hub, 'GET', `/api/appointments/slots?date=${date}&zone=Europe%2FBerlin`);
      assert.deepEqual(slots.data.slots, [], `no times on ${date}`);
    }
    await shot(page, 'booking-closed-weekend-desk', { fullPage: false });
  } finally {
    await apiCall(hub, 'DELETE', '/api/admin/appointment-hours', undefined, token);
  }
}));
