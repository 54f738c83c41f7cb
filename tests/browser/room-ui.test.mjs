// The room page as people use it, in headless Chromium with fake media: the lobby (the
// devices chosen there are the call's, joining with the camera off), the other side's
// badges (muted, camera off with their name on the tile), the toolbar always inside the
// screen at desktop and phone sizes, the remote video uncropped, the network-quality
// indicator, captions that follow the call (a meeting's connects by itself) and titles
// that name the other person.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newPage, shot, withShots, hubAndBrowser, launchMediaBrowser, startForFile, ROOM_PHONE as PHONE, ROOM_PASSWORD as PASSWORD, openRoom, openPages, joinsRoom, waitMs } from './helpers.mjs';

const DESKTOP = { width: 1280, height: 800 };
const PHONE_SIZE = { width: 390, height: 844 };

let hub, browser;
startForFile(() => hubAndBrowser({}, { media: true }), (started) => ({ hub, browser } = started));

/** Keeps every stream the page opens (window.openedStreams), to check none is left live. */
async function recordStreams(page) {
  await page.addInitScript(() => {
    window.openedStreams = [];
    const real = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
    navigator.mediaDevices.getUserMedia = async (constraints) => {
      const stream = await real(constraints);
      window.openedStreams.push(stream);
      return stream;
    };
  });
}

/** An agent (display name "Anna Berg") with an open customer room, titled as the hub titles appointments. */
const agentRoom = (username) => openRoom(hub, username, { phone: PHONE, password: PASSWORD, title: 'Appointment with Carla' });

/** The agent from the console's link (`?as=agent`): signed in, through the lobby. */
async function agentEnters(room, viewport = DESKTOP, lobby = async () => {}) {
  const page = await newPage(browser, viewport);
  // Signed in as on the console (the session cookie), no room token yet.
  const login = await page.request.post(`${hub.url}/api/login`, { data: { username: room.username, password: room.password } });
  assert.equal(login.status(), 200);
  await page.goto(`${hub.url}/room.html?room=${room.id}&as=agent`);
  await page.getByTestId('lobby').waitFor();
  await lobby(page);
  await page.getByTestId('lobby-join').click();
  await page.getByTestId('room-state').filter({ hasText: 'in the room' }).waitFor();
  return page;
}

/** The customer through the join form, the lobby beside it (in the file's browser unless `on`). */
async function customerEnters(room, viewport = PHONE_SIZE, lobby = async () => {}, on = browser) {
  const page = await newPage(on, viewport);
  await recordStreams(page);
  await page.goto(`${hub.url}/room.html?room=${room.id}`);
  await page.getByTestId('lobby').waitFor();
  await lobby(page);
  await joinsRoom(page, { phone: PHONE, password: PASSWORD, name: 'Carla' });
  return page;
}

/** A meeting: both in, the call connects by itself. */
async function connect(agent, customer) {
  await agent.getByTestId('peer-name').filter({ hasText: 'Carla' }).waitFor();
  for (const page of [agent, customer]) {
    await page.getByTestId('connection-state').filter({ hasText: /^connected$/ }).waitFor({ timeout: waitMs(20000) });
  }
}

/** Every visible toolbar button lies wholly inside the viewport. */
async function toolbarInside(page) {
  const { width, height } = page.viewportSize();
  const toolbar = page.getByTestId('toolbar');
  const box = await toolbar.boundingBox();
  assert.ok(box, 'the toolbar is shown');
  assert.ok(box.y >= 0 && box.y + box.height <= height + 0.5 && box.x >= 0 && box.x + box.width <= width + 0.5,
    `the toolbar ${JSON.stringify(box)} is inside ${width}×${height}`);
  const buttons = toolbar.locator('button:visible');
  const n = await buttons.count();
  assert.ok(n >= 3, `${n} buttons`);
  for (let i = 0; i < n; i += 1) {
    const b = await buttons.nth(i).boundingBox();
    const label = await buttons.nth(i).textContent();
    assert.ok(b.x >= 0 && b.y >= 0 && b.x + b.width <= width + 0.5 && b.y + b.height <= height + 0.5,
      `"${label}" ${JSON.stringify(b)} is inside ${width}×${height}`);
  }
}

test('the lobby: the devices chosen are the call\'s; joining with the camera off shows the name and badge on the other side', async (t) => {
  // The customer in the full browser: the headless shell gives the devices new ids in every
  // document, where a person's browser keeps them, so no device chosen is found after a reload.
  const full = await launchMediaBrowser({ full: true });
  t.after(() => full.close());
  await withShots('room-ui-lobby', async (pages) => {
    const room = await agentRoom('anna');
    let chosen = null;
    const customer = await customerEnters(room, PHONE_SIZE, async (page) => {
      pages.push(page);
      // The preview runs, the level meter moves (the fake microphone beeps).
      await page.waitForFunction(() => document.getElementById('lobby-video').videoWidth > 0);
      await page.waitForFunction(() => Number(document.querySelector('[data-testid="mic-meter"]').dataset.level) > 0, null, { timeout: waitMs(8000) });
      // Pick the last microphone and camera listed (the fake devices are several).
      const options = await page.evaluate(() => ({
        mics: [...document.getElementById('mic-select').options].map((o) => o.value),
        cams: [...document.getElementById('camera-select').options].map((o) => o.value),
      }));
      console.log(`fake devices: ${options.mics.length} microphones, ${options.cams.length} cameras`);
      assert.ok(options.mics.length >= 1 && options.cams.length >= 1);
      chosen = { mic: options.mics.at(-1), cam: options.cams.at(-1) };
      await page.getByTestId('mic-select').selectOption(chosen.mic);
      await page.getByTestId('camera-select').selectOption(chosen.cam);
      await page.waitForFunction((id) => document.getElementById('lobby-video').srcObject?.getAudioTracks()[0]?.getSettings().deviceId === id, chosen.mic);
      await page.getByTestId('lobby-camera-on').uncheck();
      await page.getByTestId('lobby-camera-off').waitFor();
      await shot(page, 'room-ui-lobby-phone');
    }, full);
    pages.push(customer);
    // The call uses the stream from the lobby: the chosen devices, the camera off.
    const tracks = await customer.evaluate(() => document.getElementById('local').srcObject.getTracks()
      .map((t) => ({ kind: t.kind, device: t.getSettings().deviceId, enabled: t.enabled, state: t.readyState })));
    assert.deepEqual(tracks.find((t) => t.kind === 'audio'), { kind: 'audio', device: chosen.mic, enabled: true, state: 'live' });
    assert.deepEqual(tracks.find((t) => t.kind === 'video'), { kind: 'video', device: chosen.cam, enabled: false, state: 'live' });
    assert.equal(await customer.getByTestId('camera').getAttribute('aria-pressed'), 'true', 'the Camera button says it is off');
    // The lobby's preview is gone, and every stream it opened before the devices were
    // chosen is stopped: the only live tracks are the call's.
    assert.equal(await customer.evaluate(() => document.getElementById('lobby-video').srcObject), null);
    const leftover = await customer.evaluate(() => {
      const call = new Set(document.getElementById('local').srcObject.getTracks());
      return { opened: window.openedStreams.length,
        live: window.openedStreams.flatMap((s) => s.getTracks()).filter((t) => !call.has(t) && t.readyState === 'live').length };
    });
    assert.ok(leftover.opened >= 3, `the lobby reopened the devices on each choice (${leftover.opened})`);
    assert.equal(leftover.live, 0, 'no preview track is left live');

    const agent = await agentEnters(room, DESKTOP);
    pages.push(agent);
    await connect(agent, customer);
    await shot(customer, 'room-ui-customer-own-camera-off-phone');
    await agent.getByTestId('peer-camera-off').waitFor();
    await agent.getByTestId('peer-tile-name').filter({ hasText: 'Carla' }).waitFor();
    assert.equal(await agent.getByTestId('peer-card').isVisible(), true, 'the name card instead of a black picture');
    assert.equal(await agent.getByTestId('peer-muted').isVisible(), false);
    await shot(agent, 'room-ui-agent-camera-off-desktop');

    // The camera on: the badge goes and the picture shows; muted: the muted badge.
    await customer.getByTestId('camera').click();
    await agent.getByTestId('peer-camera-off').waitFor({ state: 'hidden' });
    await agent.getByTestId('peer-card').waitFor({ state: 'hidden' });
    await customer.getByTestId('mute').click();
    await agent.getByTestId('peer-muted').waitFor();
    await shot(agent, 'room-ui-agent-peer-muted-desktop');
    await customer.getByTestId('mute').click();
    await agent.getByTestId('peer-muted').waitFor({ state: 'hidden' });

    // Remembered for the next call.
    const saved = await customer.evaluate(() => JSON.parse(localStorage.getItem('room-devices')));
    assert.equal(saved.mic, chosen.mic);
    assert.equal(saved.camera, chosen.cam);
    assert.equal(saved.cameraOn, true, 'turned on again in the call');

    // A reload goes straight back in (no lobby) with the remembered devices and choices.
    await customer.getByTestId('mute').click();
    await agent.getByTestId('peer-muted').waitFor();
    await customer.reload();
    await customer.getByTestId('room-state').filter({ hasText: 'in the room' }).waitFor();
    assert.equal(await customer.getByTestId('lobby').isVisible(), false);
    assert.equal(await customer.getByTestId('mute').textContent(), 'Unmute');
    const back = await customer.evaluate(() => document.getElementById('local').srcObject.getAudioTracks()[0].getSettings().deviceId);
    assert.equal(back, chosen.mic);

    // The next call in this browser: the lobby opens on the remembered microphone.
    const next = await customer.context().newPage();
    pages.push(next);
    await next.goto(`${hub.url}/room.html?room=${room.id}`);
    await next.getByTestId('lobby').waitFor();
    await next.waitForFunction((id) => document.getElementById('lobby-video').srcObject?.getAudioTracks()[0]?.getSettings().deviceId === id, chosen.mic);
    // The list of devices is filled once they are enumerated, which may come after the stream.
    await next.waitForFunction((id) => document.querySelector('[data-testid="mic-select"]')?.value === id, chosen.mic).catch(() => {});
    assert.equal(await next.getByTestId('mic-select').inputValue(), chosen.mic);
    assert.equal(await next.getByTestId('lobby-mic-on').isChecked(), false, 'muted when last seen');
    assert.equal(await next.getByTestId('lobby-camera-on').isChecked(), true);
  });
});

for (const [label, agentSize, customerSize] of [['desktop 1280×800', DESKTOP, DESKTOP], ['phone 390×844', PHONE_SIZE, PHONE_SIZE]]) {
  test(`in the call at ${label}: toolbar on screen, video uncropped, quality shown, captions and titles right`, async () => {
    await withShots(`room-ui-${agentSize.width}`, async (pages) => {
      const room = await agentRoom(`anna${agentSize.width}`);
      const agent = await agentEnters(room, agentSize, async (page) => {
        pages.push(page);
        await page.waitForFunction(() => document.getElementById('lobby-video').videoWidth > 0);
        await shot(page, `room-ui-agent-lobby-${agentSize.width}`);
      });
      // Alone: the caption says so; the toolbar is on screen already.
      await agent.getByTestId('call-caption').filter({ hasText: 'Waiting for the other person' }).waitFor();
      await toolbarInside(agent);
      const customer = await customerEnters(room, customerSize, async (page) => {
        pages.push(page);
        await page.waitForFunction(() => document.getElementById('lobby-video').videoWidth > 0);
        await shot(page, `room-ui-customer-join-${customerSize.width}`);
      });
      // Titles name the other person; the customer never sees their own name as the title.
      await agent.getByTestId('room-title').filter({ hasText: 'Video call with Carla' }).waitFor();
      await customer.getByTestId('room-title').filter({ hasText: 'Video call with Anna Berg' }).waitFor();
      assert.doesNotMatch(await customer.locator('header').textContent(), /Carla/);
      assert.doesNotMatch(await customer.title(), /Carla/);
      // A meeting: nothing rings, the call connects by itself and the caption goes.
      for (const page of [agent, customer]) {
        await page.getByTestId('connection-state').filter({ hasText: /^connected$/ }).waitFor({ timeout: waitMs(20000) });
        await page.getByTestId('call-caption').waitFor({ state: 'hidden' });
        assert.doesNotMatch(await page.locator('body').innerText(), /is calling|Calling |Press Call/);
        for (const id of ['start-call', 'accept-call', 'hang-up']) assert.equal(await page.getByTestId(id).isVisible(), false, id);
        await toolbarInside(page);
        assert.equal(await page.getByTestId('remote-video').evaluate((v) => getComputedStyle(v).objectFit), 'contain');
        // The remote picture is shown, and the local preview sits inside its tile.
        await page.waitForFunction(() => document.getElementById('remote').videoWidth > 0);
        const remote = await page.locator('#remote-tile').boundingBox();
        const local = await page.locator('#local-tile').boundingBox();
        assert.ok(local.x >= remote.x && local.y >= remote.y && local.x + local.width <= remote.x + remote.width + 0.5
          && local.y + local.height <= remote.y + remote.height + 0.5, 'picture-in-picture');
        assert.ok(remote.y + remote.height <= page.viewportSize().height, 'the remote tile fits the screen');
        const toolbarTop = (await page.getByTestId('toolbar').boundingBox()).y;
        const status = await page.getByTestId('connection-state').boundingBox();
        assert.ok(status.y + status.height <= toolbarTop, 'the status line is not under the toolbar');
        assert.ok(await page.evaluate(() => document.documentElement.scrollHeight <= innerHeight + 1), 'nothing to scroll');
        // Network quality: a value from getStats once connected.
        const quality = page.getByTestId('quality');
        await quality.waitFor({ timeout: waitMs(10000) });
        assert.match(await page.getByTestId('quality-text').textContent(), /^(Good|Fair|Poor) connection$/);
        const reading = await page.evaluate(() => window.roomDebug.quality);
        assert.ok(typeof reading.rtt === 'number', JSON.stringify(reading));
        assert.equal(reading.level, (await page.getByTestId('quality').getAttribute('data-level')));
      }
      // The grading itself (the loopback is always good): round trip and loss thresholds.
      const grades = await agent.evaluate(async () => {
        const { grade } = await import('/js/call-stats.js');
        return [grade(40, 0), grade(200, 0), grade(40, 3), grade(450, 0), grade(40, 9), grade(null, null)];
      });
      assert.deepEqual(grades, ['good', 'fair', 'fair', 'poor', 'poor', null]);
      await shot(agent, `room-ui-agent-in-call-${agentSize.width}`);
      await shot(customer, `room-ui-customer-in-call-${customerSize.width}`);
      // The customer leaves: the agent waits for her again, no stale picture or quality.
      await customer.getByTestId('leave').click();
      await agent.getByTestId('call-caption').filter({ hasText: 'Waiting for the other person' }).waitFor();
      await agent.getByTestId('quality').waitFor({ state: 'hidden' });
      await agent.getByTestId('peer-card').waitFor();
      await toolbarInside(agent);
    });
  });
}

test('"Join now" pressed while the camera is still opening takes the user in once it opens', async () => {
  await withShots('room-lobby-early-join', async (pages) => {
    const room = await agentRoom('early-joiner');
    const [page] = await openPages(browser, pages, [DESKTOP]);
    // A camera that takes 1.5 s to open, as a real one often does.
    await page.addInitScript(() => {
      const real = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
      navigator.mediaDevices.getUserMedia = async (constraints) => {
        await new Promise((r) => setTimeout(r, 1500));
        return real(constraints);
      };
    });
    const login = await page.request.post(`${hub.url}/api/login`, { data: { username: room.username, password: room.password } });
    assert.equal(login.status(), 200);
    await page.goto(`${hub.url}/room.html?room=${room.id}&as=agent`);
    await page.getByTestId('lobby-join').click();
    await page.getByTestId('room-state').filter({ hasText: 'in the room' }).waitFor({ timeout: waitMs(10000) });
  });
});
