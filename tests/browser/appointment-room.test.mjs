// An appointment's video call in headless Chromium with fake media: a customer
// books a slot, the representative presses "Start" on their day's list (it opens the
// appointment's room), the customer presses "Join the video call" on the appointment's
// page (the link of their mail), and both reach the room and a connected call (a meeting:
// no ring, no accept). A
// customer who comes early waits ("Your call with Rita starts at …", its date when not
// today), shows as waiting on
// the representative's list, and is let in by themselves once the call is started.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createAgent, agentSignsIn, withShots, shot, apiCall, hubAndBrowser, stopAll, openPages, waitMs } from './helpers.mjs';

let hub;
let browser;
before(async () => {
  // No minimum notice and a day-long start window, so the next slot can be started now.
  const env = { APPOINTMENT_MIN_NOTICE_MINUTES: '0', APPOINTMENT_START_WINDOW_MINUTES: '1440' };
  ({ hub, browser } = await hubAndBrowser(env, { media: true }));
});
after(() => stopAll(browser, hub));

/** The UTC date `days` from now, YYYY-MM-DD (the test desk is in UTC). */
const utcDay = (days) => new Date(Date.now() + days * 86400000).toISOString().slice(0, 10);

test('the representative starts an appointment and both sides reach the call', async () => {
  await withShots('appointment-room', async (pages) => {
    const rita = await createAgent(hub, { username: 'rita', display_name: 'Rita', categories: ['general'] });
    // The next free slot: today's if one is left, else tomorrow's (always within a day).
    let start = null;
    let days = 0;
    for (; days <= 1 && !start; days += 1) {
      const day = await apiCall(hub, 'GET', `/api/appointments/slots?date=${utcDay(days)}`);
      start = day.data.slots.find((s) => s.free)?.start ?? null;
    }
    assert.ok(start, 'a free slot today or tomorrow');
    const made = await apiCall(hub, 'POST', '/api/appointments', { start, name: 'Carla', email: 'carla@example.com' });
    assert.equal(made.status, 201, JSON.stringify(made.data));

    const [agent] = await openPages(browser, pages, 1);
    await agentSignsIn(agent, hub, rita, { available: false });
    await agent.goto(`${hub.url}/appointments.html`);
    await agent.getByTestId('agent-zone').filter({ hasText: 'UTC' }).waitFor();
    const localToday = await agent.evaluate(() => document.getElementById('day').value);
    if (localToday !== start.slice(0, 10)) await agent.getByTestId('later-day').click();
    const startButton = agent.getByTestId('start-appointment');
    await startButton.waitFor();
    assert.equal(await startButton.isEnabled(), true, 'startable within the window');

    const [customer] = await openPages(browser, pages, [{ width: 390, height: 844 }]);
    await customer.goto(`${hub.url}${made.data.cancel_url}`);
    await customer.getByTestId('who').filter({ hasText: 'Carla' }).waitFor();
    await customer.getByTestId('join-appointment').click();
    const waiting = customer.getByTestId('waiting-text');
    // Today's slot "at 16:00", tomorrow's "on Monday 30 November at 09:00".
    await waiting.filter({ hasText: /^Your call with Rita starts (at|on) / }).waitFor();
    assert.match(await waiting.textContent(), /you will be let in when Rita joins/);
    await shot(customer, 'appointment-waiting-room-390');
    await agent.getByTestId('customer-waiting').filter({ hasText: 'Carla is waiting' }).waitFor({ timeout: waitMs(10000) });
    await shot(agent, 'appointment-agent-sees-waiting-1280');

    // Started: the waiting customer goes in by themselves, no second click.
    const [agentRoom] = await Promise.all([agent.context().waitForEvent('page'), startButton.click()]);
    pages.push(agentRoom);
    await customer.waitForURL(/\/room\.html\?room=/, { timeout: waitMs(15000) });
    // The agent's fresh entry passes the lobby (camera preview, devices) first; the customer
    // let in from the waiting room goes straight in, with no click at all.
    await agentRoom.getByTestId('lobby-join').click();
    for (const page of [agentRoom, customer]) {
      await page.getByTestId('room-state').filter({ hasText: 'in the room' }).waitFor();
    }
    await agentRoom.getByTestId('peer-name').filter({ hasText: 'Carla' }).waitFor();
    // A meeting: in the room is in the call, nothing to ring or accept.
    for (const page of [agentRoom, customer]) {
      await page.getByTestId('connection-state').filter({ hasText: /^connected$/ }).waitFor({ timeout: waitMs(20000) });
    }

    // The customer leaves: the room stays open, and "Join" on her page works again.
    await customer.getByTestId('leave').click();
    await customer.getByTestId('post-call').waitFor();
    await customer.goto(`${hub.url}${made.data.cancel_url}`);
    await customer.getByTestId('join-appointment').click();
    await customer.waitForURL(/\/room\.html\?room=/);
    await customer.getByTestId('lobby-join').click();
    await customer.getByTestId('room-state').filter({ hasText: 'in the room' }).waitFor();
    await agentRoom.getByTestId('peer-name').filter({ hasText: 'Carla' }).waitFor();

    // Ending early asks, naming until when the room would stay open.
    await agentRoom.getByTestId('end-room').click();
    await agentRoom.getByTestId('end-room-dialog').filter({ hasText: 'stays open until' }).waitFor();
    await agentRoom.getByTestId('end-room-confirm').click();
    for (const page of [agentRoom, customer]) {
      await page.getByTestId('ended').filter({ hasText: 'The meeting has ended' }).waitFor();
    }
    // The customer's way back is her appointment's page.
    assert.equal(await customer.getByTestId('ended-back').textContent(), 'Back to your appointment');
  });
});
