// Rooms and 1-to-1 video in headless Chromium with fake media: an agent and
// a customer in two browser contexts join one room (the customer through the join
// form) and, a meeting, are in the call at once: connectionState "connected" with
// decoded video frames on the receiver; the customer's leave ends that call (logged).
// A room from a chat rings: Call, Accept, and Hang up end it. A variant forces relay through a real
// coturn started with a shared secret (TURN REST credentials from the hub) and checks
// that the selected candidate pair is a relay. A chat turns into a video call from the
// agent console with one click on each side. Time to connect is measured and printed.
// Leaving is not ending: a participant's Leave shows the post-call screen (devices
// released) and "Rejoin" brings them back into the same room; only the host's "End for
// everyone", confirmed, ends it. A reload mid-call (either side), or a cut room socket,
// brings the video back on both sides with no click; the seconds from the reload to
// decoded video are measured and printed.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { startHub, launchMediaBrowser, newPage, createAgent, apiCall, shot, withShots, agentSignsIn, freePort, openRoom, DEFAULT_SIZE, openPages, joinedChat, joinsRoom, openedBy, waitMs } from './helpers.mjs';

const PHONE = '+4915112345678';
const PASSWORD = 'tulip-42';
const TURN_SECRET = 'a-shared-secret-for-the-test';

let browser;
before(async () => { browser = await launchMediaBrowser(); });
after(async () => { await browser?.close(); });

/** `body(hub, pages)` on a hub started for it alone, stopped after; its pages' pictures
 *  kept under `name` as `withShots` keeps them. */
async function onAHubOfItsOwn(name, body) {
  const hub = await startHub();
  try {
    await withShots(name, (pages) => body(hub, pages));
  } finally {
    await hub.stop();
  }
}

/** A real coturn on loopback with TURN REST authentication (`use-auth-secret`). */
async function startTurn() {
  const bin = '/usr/bin/turnserver';
  if (!existsSync(bin)) throw new Error('turnserver (coturn) is missing: run scripts/ensure-test-deps.sh');
  const port = await freePort();
  const relayFrom = 40000 + Math.floor(Math.random() * 10000);
  const child = spawn(bin, ['-n', '--listening-ip=127.0.0.1', '--relay-ip=127.0.0.1', `--listening-port=${port}`,
    `--min-port=${relayFrom}`, `--max-port=${relayFrom + 200}`, '--use-auth-secret', `--static-auth-secret=${TURN_SECRET}`,
    '--realm=switchboard.test', '--no-tls', '--no-dtls', '--no-cli', '--allow-loopback-peers', '--simple-log',
    '--log-file=stdout', '--no-stun-backward-compatibility'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (c) => { output += c; });
  child.stderr.on('data', (c) => { output += c; });
  for (let i = 0; i < 100; i += 1) {
    if (child.exitCode !== null) throw new Error(`turnserver exited:\n${output}`);
    if (output.includes('Total General servers') || output.includes('IPv4. UDP listener opened on')) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return { port, output: () => output, stop: () => child.kill('SIGTERM') };
}

/** An agent with an open customer room, and a room token for the agent. */
const agentRoom = (hub, username) => openRoom(hub, username, { phone: PHONE, password: PASSWORD, display_name: username.toUpperCase() });

/** The agent's page in the room: its token placed where room.js keeps it. */
async function agentEnters(hub, room, query = '') {
  const page = await newPage(browser, { width: 1000, height: 800 });
  await page.addInitScript(([key, token]) => sessionStorage.setItem(key, token), [`room-token:${room.id}`, room.agentToken]);
  await page.goto(`${hub.url}/room.html?room=${room.id}${query}`);
  await page.getByTestId('room-state').filter({ hasText: 'in the room' }).waitFor();
  return page;
}

/** The customer, on a phone-sized screen, through the join form. */
async function customerEntersRoom(hub, room, query = '') {
  const page = await newPage(browser, { width: 390, height: 844 });
  await page.goto(`${hub.url}/room.html?room=${room.id}${query}`);
  await page.getByTestId('join-phone').fill('+49 151 1234 5678');
  await page.getByTestId('join-password').fill('wrong');
  await page.getByTestId('join-button').click();
  await page.getByTestId('join-error').filter({ hasText: 'password is incorrect' }).waitFor();
  await joinsRoom(page, { password: PASSWORD, name: 'Carla' });
  return page;
}

/**
 * Both in the call, "connected": in a meeting by itself, in a chat's room (`ring`) once
 * the agent called and the customer accepted. Resolves with the ms from the call's start
 * (both in, or the acceptance) to connected.
 */
/** Agent `username`'s room with the agent and then the customer in it, both pages kept for
 *  shots; `query` goes to both pages' URL. */
async function bothInRoom(hub, pages, username, query = '') {
  const room = await agentRoom(hub, username);
  const agent = await agentEnters(hub, room, query);
  pages.push(agent);
  const customer = await customerEntersRoom(hub, room, query);
  pages.push(customer);
  return { room, agent, customer };
}

async function callAndConnect(agent, customer, { ring = false } = {}) {
  await agent.getByTestId('peer-name').filter({ hasText: 'Carla' }).waitFor();
  if (ring) {
    await agent.getByTestId('start-call').click();
    await customer.getByTestId('accept-call').click();
  }
  try {
    for (const page of [agent, customer]) {
      await page.getByTestId('connection-state').filter({ hasText: /^connected$/ }).waitFor({ timeout: waitMs(20000) });
    }
  } catch (e) {
    for (const page of [agent, customer]) {
      console.error(await page.evaluate(() => JSON.stringify({ call: document.getElementById('call-state').textContent,
        conn: window.roomDebug.pc?.connectionState, ice: window.roomDebug.pc?.iceConnectionState,
        signaling: window.roomDebug.pc?.signalingState, polite: window.roomDebug.polite, notice: document.getElementById('notice').textContent })));
    }
    throw e;
  }
  return customer.evaluate(() => window.roomDebug.connectedAt - window.roomDebug.callStartedAt);
}

/** Video frames the page has decoded from the other side so far. */
const framesDecoded = (page) => page.evaluate(async () => {
  const stats = await window.roomDebug.pc.getStats();
  let frames = 0;
  stats.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') frames += s.framesDecoded || 0; });
  return frames;
});

/** The local candidate type of the selected candidate pair ("host", "srflx", "relay"). */
const selectedCandidateType = (page) => page.evaluate(async () => {
  const stats = await window.roomDebug.pc.getStats();
  let pairId = null;
  stats.forEach((s) => { if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId; });
  if (!pairId) stats.forEach((s) => { if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pairId = s.id; });
  const pair = stats.get(pairId);
  return pair ? stats.get(pair.localCandidateId)?.candidateType : null;
});

/** The kinds of the page's own camera and microphone tracks still `live`. */
const liveTracks = (page) => page.evaluate(() => window.roomDebug.tracks.filter((t) => t.readyState === 'live').map((t) => t.kind));

/**
 * Reloads `reloaded` mid-call and waits, with no click anywhere, until both pages decode
 * video again in fresh peer connections; resolves with the seconds from the reload to
 * that on each side.
 */
async function reloadAndMeasure(reloaded, other, interrupt = (page) => page.reload()) {
  for (const page of [reloaded, other]) await page.evaluate(() => { window.beforeReload = window.roomDebug.pc; });
  const t0 = Date.now();
  await interrupt(reloaded);
  const seconds = { reloaded: null, other: null };
  const deadline = t0 + 20000;
  while ((seconds.reloaded === null || seconds.other === null) && Date.now() < deadline) {
    if (seconds.reloaded === null && await reloaded.evaluate(() => window.roomDebug.pc && window.roomDebug.pc !== window.beforeReload)
      && await framesDecoded(reloaded) > 0) {
      seconds.reloaded = (Date.now() - t0) / 1000;
    }
    if (seconds.other === null && await other.evaluate(() => window.roomDebug.pc && window.roomDebug.pc !== window.beforeReload)
      && await framesDecoded(other) > 0) {
      seconds.other = (Date.now() - t0) / 1000;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(seconds.reloaded !== null && seconds.other !== null, `video came back on both sides: ${JSON.stringify(seconds)}`);
  return seconds;
}

async function waitForFrames(page) {
  for (let i = 0; i < 100; i += 1) {
    const frames = await framesDecoded(page);
    if (frames > 0) return frames;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('no video frame was decoded');
}

test('agent and customer are in a connected call with video as soon as both are in; a leave ends it, a rejoin resumes it', () => onAHubOfItsOwn('room-call', async (hub, pages) => {
  const { room, agent, customer } = await bothInRoom(hub, pages, 'vera');
  const ms = await callAndConnect(agent, customer);
  console.log(`time to connect (host candidates): ${ms.toFixed(0)} ms from both in to "connected"`);
  assert.ok(await waitForFrames(customer) > 0, 'the customer decodes the agent\'s video');
  assert.ok(await waitForFrames(agent) > 0, 'the agent decodes the customer\'s video');
  await shot(customer, 'room-customer-in-call');
  // The customer leaves: a post-call screen, camera and microphone released; the
  // room goes on for the agent, whose call ends and is logged.
  await customer.getByTestId('leave').click();
  await customer.getByTestId('post-call').waitFor();
  await agent.getByTestId('call-caption').filter({ hasText: 'Waiting for the other person' }).waitFor();
  await agent.getByTestId('connection-state').filter({ hasText: '—' }).waitFor();
  assert.deepEqual(await liveTracks(customer), [], 'no track stays live after leaving');
  await shot(customer, 'room-customer-left');
  // The call is in the agent's call log.
  let calls;
  for (let i = 0; i < 50; i += 1) {
    calls = await apiCall(hub, 'GET', '/api/calls', undefined, room.bearer);
    if (calls.data.total === 1) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(calls.data.total, 1);
  assert.equal(calls.data.items[0].peer_name, 'Carla');
  // "Rejoin" brings her back into the room, and into the call.
  await customer.getByTestId('rejoin').click();
  await customer.getByTestId('room-state').filter({ hasText: 'in the room' }).waitFor();
  await callAndConnect(agent, customer);
  assert.ok(await waitForFrames(agent) > 0, 'video again after the rejoin');

  // The customer has no "End for everyone"; the host's asks first, and Cancel keeps it.
  assert.equal(await customer.getByTestId('end-room').isVisible(), false);
  await agent.getByTestId('end-room').click();
  await agent.getByTestId('end-room-dialog').filter({ hasText: 'End for everyone?' }).waitFor();
  await shot(agent, 'room-agent-end-confirm');
  await agent.getByTestId('end-room-cancel').click();
  assert.equal(await agent.getByTestId('connection-state').textContent(), 'connected');
  await agent.getByTestId('end-room').click();
  await agent.getByTestId('end-room-confirm').click();
  for (const page of [agent, customer]) {
    await page.getByTestId('ended').filter({ hasText: 'The meeting has ended' }).waitFor();
    assert.deepEqual(await liveTracks(page), [], 'no track stays live after the end');
  }
}));

test('a reload mid-call, on either side, brings the video back on both with no click', () => onAHubOfItsOwn('room-reload', async (hub, pages) => {
  const { agent, customer } = await bothInRoom(hub, pages, 'rhea');
  await callAndConnect(agent, customer);
  await waitForFrames(agent);
  await waitForFrames(customer);

  // The other side sees "reconnecting…" while the reloaded page comes back. It can be
  // brief, shorter than a poll: the agent's page notes every caption it shows.
  await agent.evaluate(() => {
    window.captionsShown = [];
    const note = () => {
      const text = document.querySelector('[data-testid="call-caption"]')?.textContent || '';
      if (text && window.captionsShown.at(-1) !== text) window.captionsShown.push(text);
    };
    new MutationObserver(note).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
    note();
  });
  const byCustomer = await reloadAndMeasure(customer, agent);
  console.log(`reload to video (customer reloads): customer ${byCustomer.reloaded.toFixed(2)} s, agent ${byCustomer.other.toFixed(2)} s`);
  const shown = await agent.evaluate(() => window.captionsShown);
  assert.ok(shown.some((text) => text.includes('reconnecting')), `the agent saw "reconnecting…" (captions: ${JSON.stringify(shown)})`);
  await shot(customer, 'room-customer-after-reload');

  const byAgent = await reloadAndMeasure(agent, customer);
  console.log(`reload to video (agent reloads): agent ${byAgent.reloaded.toFixed(2)} s, customer ${byAgent.other.toFixed(2)} s`);

  // A dropped connection (the room socket cut, the page stays): back by itself too.
  const dropped = await reloadAndMeasure(customer, agent, (page) => page.evaluate(() => window.roomDebug.socket.close()));
  console.log(`drop to video (customer's socket cut): customer ${dropped.reloaded.toFixed(2)} s, agent ${dropped.other.toFixed(2)} s`);
  for (const page of [agent, customer]) {
    assert.equal(await page.getByTestId('call-state').textContent(), 'active');
  }
}));

test('forced relay through a real coturn selects a relay candidate', async () => {
  const turn = await startTurn();
  const hub = await startHub({
    TURN_URLS: `turn:127.0.0.1:${turn.port}?transport=udp`,
    TURN_SECRET,
  });
  try {
    await withShots('room-relay', async (pages) => {
      const { agent, customer } = await bothInRoom(hub, pages, 'rita', '&relay=1');
      const ms = await callAndConnect(agent, customer);
      console.log(`time to connect (relay through coturn): ${ms.toFixed(0)} ms from both in to "connected"`);
      assert.equal(await selectedCandidateType(customer), 'relay');
      assert.equal(await selectedCandidateType(agent), 'relay');
      assert.ok(await waitForFrames(customer) > 0);
    });
  } catch (e) {
    console.error(turn.output());
    throw e;
  } finally {
    await hub.stop();
    turn.stop();
  }
});

test('a chat turns into a video call: "Video" on the agent console, one click for the customer', () => onAHubOfItsOwn('room-from-chat', async (hub, pages) => {
  const vic = await createAgent(hub, { username: 'vic', display_name: 'Vic', categories: ['sales'] });
  const [agent, customer] = await openPages(browser, pages, [DEFAULT_SIZE, { width: 390, height: 844 }]);
  await agentSignsIn(agent, hub, vic);
  const panel = await joinedChat(customer, agent, hub, 'sales', 'Carla');
  const agentRoom = await openedBy(agent, pages, panel.getByTestId('video-button'));
  const customerRoom = await openedBy(customer, pages, customer.getByTestId('video-join'));
  // A fresh entry passes the lobby (camera preview, devices) first.
  for (const page of [agentRoom, customerRoom]) await page.getByTestId('lobby-join').click();
  for (const page of [agentRoom, customerRoom]) {
    await page.getByTestId('room-state').filter({ hasText: 'in the room' }).waitFor();
  }
  await agentRoom.getByTestId('peer-name').filter({ hasText: 'Carla' }).waitFor();
  const ms = await callAndConnect(agentRoom, customerRoom, { ring: true });
  console.log(`time to connect (from a chat): ${ms.toFixed(0)} ms from acceptance to "connected"`);
  assert.ok(await waitForFrames(customerRoom) > 0);
  await shot(agent, 'room-agent-console-after-video');

  // Hung up, the call is in the agent's own call log on the console, and its
  // "Open the chat" shows the conversation it grew out of.
  await agentRoom.getByTestId('hang-up').click();
  await agentRoom.getByTestId('call-state').filter({ hasText: 'ended' }).waitFor();
  // The list follows by itself, with no click on "Refresh".
  const log = agent.getByTestId('call-log').filter({ hasText: 'Carla' });
  await log.waitFor({ timeout: waitMs(15000) });
  await log.getByTestId('call-open-chat').click();
  await agent.getByTestId('archive-detail').filter({ hasText: 'Carla' }).waitFor();
}));

test('a call request: the customer asks for video in the queue, the agent\'s chat opens into the room', () => onAHubOfItsOwn('room-call-request', async (hub, pages) => {
  const uma = await createAgent(hub, { username: 'uma', display_name: 'Uma', categories: ['billing'] });
  const [agent, customer] = await openPages(browser, pages, [DEFAULT_SIZE, { width: 390, height: 844 }]);
  await agentSignsIn(agent, hub, uma);
  await customer.goto(`${hub.url}/`);
  await customer.getByTestId('category-billing').click();
  await customer.getByTestId('name-input').fill('Carla');
  await customer.getByTestId('video-request').check();
  await customer.getByTestId('join-button').click();
  // The agent's panel offers the room at once; the customer has the invitation.
  const panel = agent.locator('[data-testid="chat-panel"][data-customer="Carla"]');
  const agentRoom = await openedBy(agent, pages, panel.getByTestId('video-room-link'));
  const customerRoom = await openedBy(customer, pages, customer.getByTestId('video-join'));
  for (const page of [agentRoom, customerRoom]) await page.getByTestId('lobby-join').click();
  const ms = await callAndConnect(agentRoom, customerRoom, { ring: true });
  console.log(`time to connect (call request): ${ms.toFixed(0)} ms from acceptance to "connected"`);
  assert.ok(await waitForFrames(agentRoom) > 0);
  // A reload of the customer's room (opened from the chat's link) rejoins the call:
  // no "Call" and no "Accept" again.
  const back = await reloadAndMeasure(customerRoom, agentRoom);
  console.log(`reload to video (call request, customer reloads): customer ${back.reloaded.toFixed(2)} s, agent ${back.other.toFixed(2)} s`);
}));
