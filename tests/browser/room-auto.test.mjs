// Being in a meeting room is being in the call, in headless Chromium with fake media: an
// agent and a customer join a room (no "Call", no "Accept" anywhere) and video flows both
// ways as soon as both are in; whoever leaves and rejoins goes straight back into the
// call, video flowing again, still with no ring. The agent's page makes the offer (the
// impolite side), so the two never offer at once.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newPage, apiCall, shot, withShots, hubAndBrowser, startForFile, ROOM_PHONE as PHONE, ROOM_PASSWORD as PASSWORD, openRoom, joinsRoom } from './helpers.mjs';


let hub, browser;
startForFile(() => hubAndBrowser({}, { media: true }), (started) => ({ hub, browser } = started));

/** An agent (Anna Berg) with an open customer room (a meeting room, not one opened from a chat). */
const meetingRoom = (username) => openRoom(hub, username, { phone: PHONE, password: PASSWORD });

/** Counts clicks on the old ring controls, to prove none was needed (none is even shown). */
async function watchRingButtons(page) {
  await page.addInitScript(() => {
    window.ringClicks = 0;
    addEventListener('click', (e) => {
      if (e.target.closest?.('#start-call, #accept-call')) window.ringClicks += 1;
    }, true);
  });
}

async function agentEnters(room, viewport) {
  const page = await newPage(browser, viewport);
  await watchRingButtons(page);
  await page.addInitScript(([key, token]) => sessionStorage.setItem(key, token), [`room-token:${room.id}`, room.agentToken]);
  await page.goto(`${hub.url}/room.html?room=${room.id}`);
  await page.getByTestId('room-state').filter({ hasText: 'in the room' }).waitFor();
  return page;
}

async function customerEnters(room, viewport) {
  const page = await newPage(browser, viewport);
  await watchRingButtons(page);
  await page.goto(`${hub.url}/room.html?room=${room.id}`);
  await joinsRoom(page, { phone: PHONE, password: PASSWORD, name: 'Carla' });
  return page;
}

/** Video frames decoded from the other side in the page's current peer connection. */
const framesDecoded = (page) => page.evaluate(async () => {
  const pc = window.roomDebug?.pc;
  if (!pc) return 0;
  const stats = await pc.getStats();
  let frames = 0;
  stats.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') frames += s.framesDecoded || 0; });
  return frames;
});

/**
 * Waits, touching nothing on either page, until `page` shows the other side's video: the
 * remote <video> has a picture and frames are decoded in a peer connection other than
 * `not` (the one from before a leave). Fails after `ms`.
 */
async function videoFlows(page, label, { not = null, ms = 20000 } = {}) {
  const deadline = Date.now() + ms;
  let last = null;
  while (Date.now() < deadline) {
    last = await page.evaluate(() => ({
      call: document.getElementById('call-state').textContent,
      caption: document.getElementById('call-caption').textContent,
      width: document.getElementById('remote').videoWidth,
      pc: window.roomDebug.pc ? window.roomDebug.pc.connectionState : null,
    }));
    const fresh = await page.evaluate((old) => !!window.roomDebug.pc && window.roomDebug.pc !== window[old], not);
    if (last.width > 0 && (not === null || fresh) && await framesDecoded(page) > 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`${label}: no video from the other side within ${ms / 1000} s, with no ring and no click (${JSON.stringify(last)})`);
}

async function noRingNeeded(page) {
  assert.equal(await page.evaluate(() => window.ringClicks), 0);
  assert.equal(await page.getByTestId('start-call').isVisible(), false, 'no "Call" button in a meeting room');
  assert.equal(await page.getByTestId('accept-call').isVisible(), false, 'no "Accept" button in a meeting room');
}

test('two people in a meeting room are in the call: video flows with no ring; a leave and rejoin goes straight back in', async () => {
  await withShots('room-auto', async (pages) => {
    const room = await meetingRoom('anna');
    const agent = await agentEnters(room, { width: 1280, height: 860 });
    pages.push(agent);
    await agent.getByTestId('call-caption').filter({ hasText: 'Waiting for the other person' }).waitFor();
    const customer = await customerEnters(room, { width: 390, height: 844 });
    pages.push(customer);

    // Both in: the video flows both ways, no one pressed anything.
    await videoFlows(customer, 'the customer after joining');
    await videoFlows(agent, 'the agent after the customer joined');
    for (const page of [agent, customer]) await noRingNeeded(page);

    // The customer leaves and rejoins: straight back into the call.
    await customer.getByTestId('leave').click();
    await customer.getByTestId('post-call').waitFor();
    await agent.getByTestId('call-caption').filter({ hasText: 'Waiting for' }).waitFor();
    for (const page of [agent, customer]) await page.evaluate(() => { window.before = window.roomDebug.pc; });
    await customer.getByTestId('rejoin').click();
    await videoFlows(customer, 'the customer after rejoining', { not: 'before' });
    await videoFlows(agent, 'the agent after the customer rejoined', { not: 'before' });

    // The agent (who offers) leaves and rejoins: the same.
    await agent.getByTestId('leave').click();
    await agent.getByTestId('post-call').waitFor();
    for (const page of [agent, customer]) await page.evaluate(() => { window.before = window.roomDebug.pc; });
    await agent.getByTestId('rejoin').click();
    await videoFlows(agent, 'the agent after rejoining', { not: 'before' });
    await videoFlows(customer, 'the customer after the agent rejoined', { not: 'before' });
    for (const page of [agent, customer]) await noRingNeeded(page);
    await shot(customer, 'room-auto-customer-after-rejoin-390');

    // Each time both were in is a call in the agent's log: three so far.
    let calls;
    await agent.getByTestId('end-room').click();
    await agent.getByTestId('end-room-confirm').click();
    for (let i = 0; i < 50; i += 1) {
      calls = await apiCall(hub, 'GET', '/api/calls', undefined, room.bearer);
      if (calls.data.total === 3) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(calls.data.total, 3, JSON.stringify(calls.data));
  });
});
