// Appointments (issue 17): a customer books a free slot on the booking page (shown in
// their own time, the desk's zone beside it), follows the confirmation's cancel link,
// and cancels with the button; opening the link alone changes nothing, a second visit
// says it is cancelled, and a bad link is a plain message. On a phone-sized window.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHub, launchBrowser, newPage, createAgent, agentSignsIn, withShots, apiCall } from './helpers.mjs';

let hub;
let browser;
before(async () => {
  hub = await startHub({ APPOINTMENT_TIME_ZONE: 'Europe/Berlin' });
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await hub?.stop();
});

/** The local date `days` from now, YYYY-MM-DD. */
function dayIn(days) {
  const d = new Date(Date.now() + days * 86400000);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

test('book a slot, open the cancel link, cancel it', async () => {
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

    // Opening the link shows the appointment and cancels nothing.
    await page.getByTestId('cancel-link').click();
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
