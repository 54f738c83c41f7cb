// "Join the video call" on the appointment's page: whether it is too early is the server's
// clock's word (the room status's `now`), not the customer's, which may be off by minutes
// or days, ahead or behind; a network failure asking to join says so and leaves Join to press again.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newPage, createAgent, withShots, apiCall, shot, hubAndBrowser, startForFile } from './helpers.mjs';

let hub, browser;
startForFile(() => hubAndBrowser({ APPOINTMENT_TIME_ZONE: 'Europe/Berlin' }), (started) => ({ hub, browser } = started));

/** An appointment booked through the API three days ahead: its start and its page. */
let booked = null;
async function appointment() {
  if (booked) return booked;
  await createAgent(hub, { username: 'jana', display_name: 'Jana Roth', categories: ['general'] });
  const date = new Date(Date.now() + 3 * 86400000).toISOString().slice(0, 10);
  const day = await apiCall(hub, 'GET', `/api/appointments/slots?date=${date}`);
  const start = day.data.slots.find((s) => s.free).start;
  const made = await apiCall(hub, 'POST', '/api/appointments', { start, name: 'Carla', email: 'carla@example.com' });
  assert.equal(made.status, 201, JSON.stringify(made.data));
  booked = { start, page: made.data.cancel_url };
  return booked;
}

/** The room status `page` reads says, by the server's clock, that the call may start now. */
async function serverSaysJoinable(page) {
  await page.route('**/api/appointments/room?*', async (route) => {
    const response = await route.fetch();
    const room = await response.json();
    await route.fulfill({ response, json: { ...room, now: room.joinable_from + 1000 } });
  });
}

/** The customer on `page` opens the appointment's page `link` and presses Join: the join
 *  requests the page makes from then on (their URLs, as they are made). */
async function joinPressed(page, link) {
  const asks = [];
  page.on('request', (r) => { if (r.url().endsWith('/api/appointments/join')) asks.push(r.url()); });
  await page.goto(`${hub.url}${link}`);
  await page.getByTestId('appointment').waitFor();
  await page.getByTestId('join-appointment').click();
  return asks;
}

test("a customer's clock days ahead does not let them wait days early: the server's clock decides", () => withShots('manage-join-clock', async (pages) => {
  const { start, page: link } = await appointment();
  const page = await newPage(browser, { width: 390, height: 844 });
  pages.push(page);
  // The customer's clock says the call began ten minutes ago; the server's, days before it.
  await page.clock.setFixedTime(new Date(Date.parse(start) + 10 * 60000));
  const asks = await joinPressed(page, link);
  await page.getByTestId('waiting-text').filter({ hasText: 'Come back from' }).waitFor();
  assert.deepEqual(asks, [], 'not put in the waiting room days ahead');
  assert.equal(await page.getByTestId('join-appointment').isEnabled(), true);
}));

test("a customer's clock days behind does not send them away when the call may start: the server's clock decides", () => withShots('manage-join-clock-behind', async (pages) => {
  const { start, page: link } = await appointment();
  const page = await newPage(browser, { width: 390, height: 844 });
  pages.push(page);
  // The customer's clock says a week before the start; the server's, that the call may start.
  await page.clock.setFixedTime(new Date(Date.parse(start) - 7 * 86400000));
  await serverSaysJoinable(page);
  const asks = await joinPressed(page, link);
  // Asked to join (the hub's own clock says not yet: the waiting room), not told to come back.
  await page.getByTestId('waiting-text').filter({ hasText: 'you will be let in' }).waitFor();
  assert.ok(asks.length >= 1, 'the page asked to join');
  assert.equal(await page.getByTestId('waiting-text').filter({ hasText: 'Come back from' }).count(), 0);
}));

test('a network failure asking to join says so and leaves Join to press again', () => withShots('manage-join-offline', async (pages) => {
  const { page: link } = await appointment();
  const page = await newPage(browser, { width: 1280, height: 800 });
  pages.push(page);
  // The call may start now (by the server's clock), and the network drops the ask.
  await serverSaysJoinable(page);
  await page.route('**/api/appointments/join', (route) => route.abort('internetdisconnected'));
  await page.goto(`${hub.url}${link}`);
  await page.getByTestId('appointment').waitFor();
  await page.getByTestId('join-appointment').click();
  await page.getByTestId('cancel-error').filter({ hasText: 'Cannot reach the server' }).waitFor();
  assert.equal(await page.getByTestId('join-appointment').isEnabled(), true);
  assert.equal(await page.getByTestId('waiting-room').isVisible(), false);
  await shot(page, 'manage-join-offline');
}));
