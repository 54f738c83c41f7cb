// The room page before and after the call, in headless Chromium with fake media, at
// desktop (1280×860) and phone (390×844) sizes: the lobby says who is in the room
// already (and names no one to a visitor who has not given the access code yet); once
// the host ends the meeting, no call control is left on either side (no Mute or Camera
// that does nothing), the card says who ended it, and there is a way back: to the agent
// console, and for a customer who came from a chat, to the chat (the room's tab closes).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createAgent, apiCall, shot, withShots, agentSignsIn, hubAndBrowser, startForFile, ROOM_PHONE as PHONE, ROOM_PASSWORD as PASSWORD, openRoom, openPages, joinedChat, waitMs } from './helpers.mjs';

const DESKTOP = { width: 1280, height: 860 };
const PHONE_SIZE = { width: 390, height: 844 };

let hub, browser;
startForFile(() => hubAndBrowser({}, { media: true }), (started) => ({ hub, browser } = started));

const meetingRoom = (username) => openRoom(hub, username, { phone: PHONE, password: PASSWORD });

/** Nothing of the call is left: no video, no toolbar, no Mute or Camera button. */
async function noCallControls(page) {
  for (const id of ['stage', 'toolbar', 'mute', 'camera', 'leave', 'start-call', 'hang-up', 'end-room']) {
    assert.equal(await page.getByTestId(id).isVisible(), false, `${id} is gone`);
  }
  assert.deepEqual(await page.evaluate(() => window.roomDebug.tracks.filter((t) => t.readyState === 'live').map((t) => t.kind)), [],
    'camera and microphone released');
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= innerWidth), 'nothing wider than the screen');
}

for (const [label, size] of [['desktop 1280×860', DESKTOP], ['phone 390×844', PHONE_SIZE]]) {
  test(`at ${label}: the lobby says who is inside; after the end no call control is left and the host has a way back`, async () => {
    await withShots(`room-lobby-end-${size.width}`, async (pages) => {
      const room = await meetingRoom(`anna${size.width}`);

      // The customer, with a link that carries her token, waits in the lobby: nobody yet.
      const joined = await apiCall(hub, 'POST', `/api/join/${room.id}`, { phone: PHONE, password: PASSWORD, name: 'Carla' });
      assert.equal(joined.status, 200, JSON.stringify(joined.data));
      const [customer] = await openPages(browser, pages, [size]);
      await customer.goto(`${hub.url}/room.html?room=${room.id}#token=${joined.data.token}`);
      const customerInside = customer.getByTestId('lobby-inside');
      await customerInside.filter({ hasText: 'No one else is in the room yet' }).waitFor();

      // The agent from the console's link: the lobby says nobody is in; "Join now".
      const [agent] = await openPages(browser, pages, [size]);
      const login = await agent.request.post(`${hub.url}/api/login`, { data: { username: room.username, password: room.password } });
      assert.equal(login.status(), 200);
      await agent.goto(`${hub.url}/room.html?room=${room.id}&as=agent`);
      await agent.getByTestId('lobby-inside').filter({ hasText: 'No one else is in the room yet' }).waitFor();
      await agent.getByTestId('lobby-join').click();
      await agent.getByTestId('room-state').filter({ hasText: 'in the room' }).waitFor();

      // The customer's lobby follows by itself: the agent is in now.
      await customerInside.filter({ hasText: 'Anna Berg is in the room.' }).waitFor({ timeout: waitMs(10000) });
      await customer.waitForFunction(() => document.getElementById('lobby-video').videoWidth > 0);
      await shot(customer, `room-lobby-inside-${size.width}`);

      // A visitor who has not given the access code sees the lobby but no names.
      const [stranger] = await openPages(browser, pages, [size]);
      await stranger.goto(`${hub.url}/room.html?room=${room.id}`);
      await stranger.getByTestId('lobby').waitFor();
      await stranger.getByTestId('join').waitFor();
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(await stranger.getByTestId('lobby-inside').isVisible(), false);
      assert.doesNotMatch(await stranger.locator('body').innerText(), /Anna|Carla/);
      await stranger.context().close();

      // In: the call connects by itself (a meeting), and the agent's lobby would name her.
      await customer.getByTestId('lobby-join').click();
      for (const page of [agent, customer]) {
        await page.getByTestId('connection-state').filter({ hasText: /^connected$/ }).waitFor({ timeout: waitMs(20000) });
      }

      // The host ends it for everyone.
      await agent.getByTestId('end-room').click();
      await agent.getByTestId('end-room-confirm').click();
      for (const page of [agent, customer]) {
        await page.getByTestId('ended').waitFor();
        assert.equal(await page.getByTestId('ended-title').textContent(), 'The meeting has ended');
        await noCallControls(page);
        assert.equal(await page.getByTestId('room-notice').isVisible(), false, 'said once, on the card');
      }
      assert.match(await agent.getByTestId('ended-text').textContent(), /You ended it for everyone/);
      assert.match(await customer.getByTestId('ended-text').textContent(), /Anna Berg ended it/);
      const back = agent.getByTestId('ended-back');
      assert.equal(await back.textContent(), 'Back to the console');
      assert.equal(await back.getAttribute('href'), '/agent.html');
      // A customer who came by a meeting's own link has nowhere to go back to.
      assert.equal(await customer.getByTestId('ended-back').isVisible(), false);
      await shot(agent, `room-ended-agent-${size.width}`);
      await shot(customer, `room-ended-customer-${size.width}`);
    });
  });
}

test('from a chat: after the end, "Back to the chat" closes the room\'s tab and the chat is there', async () => {
  await withShots('room-end-chat', async (pages) => {
    const vic = await createAgent(hub, { username: 'vic', display_name: 'Vic', categories: ['sales'] });
    const [agent, customer] = await openPages(browser, pages, [DESKTOP, PHONE_SIZE]);
    await agentSignsIn(agent, hub, vic);
    const panel = await joinedChat(customer, agent, hub, 'sales', 'Carla');
    const [agentRoom] = await Promise.all([agent.context().waitForEvent('page'), panel.getByTestId('video-button').click()]);
    pages.push(agentRoom);
    const [customerRoom] = await Promise.all([customer.context().waitForEvent('page'), customer.getByTestId('video-join').click()]);
    pages.push(customerRoom);
    await agentRoom.getByTestId('lobby-join').click();
    await agentRoom.getByTestId('room-state').filter({ hasText: 'in the room' }).waitFor();
    // The customer's lobby names the agent who is waiting for her.
    await customerRoom.getByTestId('lobby-inside').filter({ hasText: 'Vic is in the room.' }).waitFor({ timeout: waitMs(10000) });
    await customerRoom.getByTestId('lobby-join').click();
    // A call from a chat rings: Call, then Accept.
    await agentRoom.getByTestId('peer-name').filter({ hasText: 'Carla' }).waitFor();
    await agentRoom.getByTestId('start-call').click();
    await customerRoom.getByTestId('accept-call').click();
    await customerRoom.getByTestId('connection-state').filter({ hasText: /^connected$/ }).waitFor({ timeout: waitMs(20000) });

    await agentRoom.getByTestId('end-room').click();
    await agentRoom.getByTestId('end-room-confirm').click();
    await customerRoom.getByTestId('ended').waitFor();
    await noCallControls(customerRoom);
    const back = customerRoom.getByTestId('ended-back');
    assert.equal(await back.textContent(), 'Back to the chat');
    await shot(customerRoom, 'room-ended-chat-customer-390');
    await clickThatCloses(customerRoom, back);
    // The chat is still there, in its own tab.
    await customer.getByTestId('session').waitFor();
    assert.equal(customer.isClosed(), false);
    // The agent's tab goes back to the console the same way.
    await agentRoom.getByTestId('ended').waitFor();
    await clickThatCloses(agentRoom, agentRoom.getByTestId('ended-back'));
  });
});

test('opened again in another tab: the first lets go of the call (no dead controls) and "Join here" takes it back', async () => {
  await withShots('room-other-tab', async (pages) => {
    const room = await meetingRoom('tabby');
    const [first] = await openPages(browser, pages, [DESKTOP]);
    const login = await first.request.post(`${hub.url}/api/login`, { data: { username: room.username, password: room.password } });
    assert.equal(login.status(), 200);
    await first.goto(`${hub.url}/room.html?room=${room.id}&as=agent`);
    await first.getByTestId('lobby-join').click();
    await first.getByTestId('room-state').filter({ hasText: 'in the room' }).waitFor();
    // The same agent, another tab of the same browser: its lobby says they are in already.
    const second = await first.context().newPage();
    await second.goto(`${hub.url}/room.html?room=${room.id}&as=agent`);
    await second.getByTestId('lobby-inside').filter({ hasText: 'You are in this meeting in another tab' }).waitFor();
    await second.getByTestId('lobby-join').click();
    await second.getByTestId('room-state').filter({ hasText: 'in the room' }).waitFor();
    await first.getByTestId('ended-title').filter({ hasText: 'You are in this meeting elsewhere' }).waitFor();
    await noCallControls(first);
    await shot(first, 'room-other-tab-1280');
    await first.getByTestId('join-here').click();
    await first.getByTestId('room-state').filter({ hasText: 'in the room' }).waitFor();
    await second.getByTestId('ended-title').filter({ hasText: 'You are in this meeting elsewhere' }).waitFor();
    assert.equal(await first.getByTestId('mute').isVisible(), true);
  });
});

/**
 * Clicks `target`, which closes `page`, and waits for the close. The page may close while
 * Playwright still finishes the click; that error is the close itself, not a failure.
 */
async function clickThatCloses(page, target) {
  const closed = page.waitForEvent('close', { timeout: waitMs(5000) });
  await target.click().catch((e) => {
    if (!page.isClosed()) throw e;
  });
  await closed;
}
