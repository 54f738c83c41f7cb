// An agent whose network drops for a few seconds stays signed in with their
// chats: only a 401/403 from /api/me means "signed out";
// a network error retries. A reconnect or a reload bringing several chats back reads the
// work list once (a read in flight and at most one queued, not one per chat), at desk and
// phone sizes. A network that goes silent without a reset is noticed by the page's own
// liveness check. The agent's page goes through a TCP proxy the test cuts or silences,
// because Chromium's offline mode alone leaves an open websocket up.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN_PASSWORD, startProxy, createAgent, agentSignsIn, withShots, shot, hubAndBrowser, stopAll, openPages, sendMessage, joinedChat, newPage, apiCall, adminToken, customerJoins, panelOf, waitMs } from './helpers.mjs';

let hub;
let proxy;
let browser;
before(async () => {
  ({ hub, browser } = await hubAndBrowser({ RESUME_GRACE_SECS: '30' }));
  proxy = await startProxy(hub);
});
after(() => stopAll(browser, proxy, hub));


test('a network drop of a few seconds keeps the agent signed in with their chat', async () => {
  proxy.restore();
  await withShots('agent-reconnect', async (pages) => {
    const gina = await createAgent(hub, { username: 'gina', display_name: 'Gina', categories: ['sales'] });
    const [agent, customer] = await openPages(browser, pages, 2);
    // The agent reaches the hub only through the proxy; the customer directly.
    await agentSignsIn(agent, { url: proxy.url }, gina);
    const panel = await joinedChat(customer, agent, hub, 'sales', 'Hana');
    await sendMessage(customer, 'Before the drop');
    await panel.getByTestId('message').filter({ hasText: 'Before the drop' }).waitFor();

    // The agent's network goes away: offline mode fails new requests, the cut proxy resets the open socket.
    let failedChecks = 0;
    agent.on('requestfailed', (r) => { if (r.url().endsWith('/api/me')) failedChecks += 1; });
    // The cut first, heard by the page before the browser goes offline: offline, Chromium
    // holds back the reset of a socket already open, and the page would not hear it.
    proxy.cut();
    await agent.getByTestId('connection-state').filter({ hasText: 'reconnecting' }).waitFor({ timeout: waitMs(15000) });
    await agent.context().setOffline(true);
    await customer.getByTestId('peer-away').waitFor({ timeout: waitMs(15000) });
    // Failed reconnects, each followed by a failed /api/me check (the backoff doubles
    // between them: three take a few seconds).
    while (failedChecks < 3) await agent.waitForEvent('requestfailed', { timeout: waitMs(15000) });
    await shot(agent, 'agent-reconnecting');
    assert.equal(await agent.getByTestId('login').isVisible(), false, 'not sent to the sign-in screen while offline');
    assert.equal(await panel.isVisible(), true, 'the chat stays on screen while reconnecting');
    assert.match(await agent.getByTestId('connection-state').textContent(), /reconnecting/);

    proxy.restore();
    await agent.context().setOffline(false);
    await agent.getByTestId('connection-state').filter({ hasText: 'online' }).waitFor({ timeout: waitMs(20000) });
    await customer.getByTestId('peer-back').waitFor({ timeout: waitMs(15000) });
    assert.equal(await agent.getByTestId('login').isVisible(), false, 'still signed in');
    assert.equal(await agent.getByTestId('page-notice').isVisible(), false, 'no notice left once back');
    await panel.getByTestId('customer-status').filter({ hasText: 'connected' }).waitFor();
    assert.equal(await panel.getByTestId('message').filter({ hasText: 'Before the drop' }).count(), 1, 'the resumed chat shows each message once');

    // Both directions work again in the same chat.
    await sendMessage(panel, 'Sorry, my network dropped');
    await customer.getByTestId('message').filter({ hasText: 'Sorry, my network dropped' }).waitFor();
    await sendMessage(customer, 'No problem');
    await panel.getByTestId('message').filter({ hasText: 'No problem' }).waitFor();
    await panel.locator('[data-testid="message"].mine:not(.pending):not(.failed)').filter({ hasText: 'Sorry, my network dropped' }).waitFor();
  });
});

test('a network that dies without a reset is noticed by the console, which reconnects', async () => {
  proxy.restore();
  await withShots('agent-silent-network', async (pages) => {
    const vera = await createAgent(hub, { username: 'vera', display_name: 'Vera', categories: ['sales'] });
    const [agent, customer] = await openPages(browser, pages, 2);
    // The console's clock is Playwright's (running at its real pace), so the test can jump
    // over the quiet time the liveness check allows instead of waiting it out.
    await agent.clock.install();
    await agentSignsIn(agent, { url: proxy.url }, vera);
    const panel = await joinedChat(customer, agent, hub, 'sales', 'Quinn');
    await sendMessage(customer, 'Are you there?');
    await panel.getByTestId('message').filter({ hasText: 'Are you there?' }).waitFor();

    // Every byte of the open connection now goes nowhere, and no reset tells the browser:
    // on its own the page would say "online" until TCP gave up, minutes later.
    proxy.silence();
    await sendMessage(panel, 'Into the void');
    await agent.clock.fastForward(30000);
    assert.match(await agent.getByTestId('connection-state').textContent(), /online/, 'quiet, asked for a pong, not yet given up');
    // Each jump runs the page's check once: it gives up after two more without an answer.
    await agent.clock.fastForward(6000);
    await agent.clock.fastForward(6000);
    await agent.getByTestId('connection-state').filter({ hasText: 'reconnecting' }).waitFor({ timeout: waitMs(15000) });
    // What was typed into the dead connection is not left showing as sending.
    await panel.locator('[data-testid="message"].failed').filter({ hasText: 'Into the void' }).waitFor();
    await shot(agent, 'agent-silent-network');

    // New connections go through: the console is back with its chat, both ways.
    await agent.getByTestId('connection-state').filter({ hasText: 'online' }).waitFor({ timeout: waitMs(20000) });
    await panel.getByTestId('customer-status').filter({ hasText: 'connected' }).waitFor();
    await sendMessage(panel, 'Back now');
    await customer.getByTestId('message').filter({ hasText: 'Back now' }).waitFor();
    await sendMessage(customer, 'Welcome back');
    await panel.getByTestId('message').filter({ hasText: 'Welcome back' }).waitFor();
    assert.equal(await customer.getByTestId('message').filter({ hasText: 'Into the void' }).count(), 0, 'the lost line never reached the hub');
  });
});

for (const [label, size] of [['desk', { width: 1366, height: 768 }], ['phone', { width: 390, height: 844 }]]) {
  test(`a reconnect or a reload reads the work list once, however many chats it brings back (${label})`, async () => {
    proxy.restore();
    await withShots(`agent-reconnect-reads-${label}`, async (pages) => {
      // A category of this test's own: nobody else's agent is routed its customers.
      const category = `reads-${label}`;
      const made = await apiCall(hub, 'POST', '/api/admin/categories', { id: category, name: `Reads ${label}` }, await adminToken(hub));
      assert.equal(made.status, 201, JSON.stringify(made.data));
      const rita = await createAgent(hub, { username: `rita-${label}`, display_name: 'Rita', categories: [category], max_chats: 3 });
      const agent = await newPage(browser, size);
      pages.push(agent);
      await agentSignsIn(agent, { url: proxy.url }, rita);
      const customers = await openPages(browser, pages, [{ width: 390, height: 844 }, { width: 390, height: 844 }, { width: 390, height: 844 }]);
      for (const [i, customer] of customers.entries()) {
        // One panel is shown at a time: the others are there, hidden.
        await customerJoins(customer, hub, category, `Reader ${i} ${label}`);
        await sendMessage(customer, `Question ${i}`);
        await panelOf(agent, `Reader ${i} ${label}`).getByTestId('message').filter({ hasText: `Question ${i}` }).waitFor({ state: 'attached' });
      }

      // The cut first, heard by the page before the browser goes offline: offline, Chromium
      // holds back the reset of a socket already open, and the page would not hear it.
      proxy.cut();
      await agent.getByTestId('connection-state').filter({ hasText: 'reconnecting' }).waitFor({ timeout: waitMs(15000) });
      await agent.context().setOffline(true);
      // From here on, every read of the list (its main GET /api/inbox; a read of the
      // conversations "My chats" shows goes with it).
      const reads = [];
      // The console also reads the list every 10 s (REFRESH_MS in agent-conversations.js),
      // ticking from its page's load: a window of W ms holds at most floor(W / 10 s) of those
      // ticks after a load, and one more where the tick's phase is unknown. A slow machine
      // stretches the windows below past 10 s; the bounds count those ticks, which a burst
      // of one read per chat (four here) still exceeds.
      const REFRESH_MS = 10000;
      const ticksWithin = (since, phaseKnown) => Math.floor((Date.now() - since) / REFRESH_MS) + (phaseKnown ? 0 : 1);
      let since = Date.now();
      agent.on('request', (r) => {
        const u = new URL(r.url());
        if (u.pathname === '/api/inbox' && !u.searchParams.has('limit')) reads.push(u.search);
      });
      // A reload's reads are the new page's: counted from the moment its document replaces
      // the old one, whose own refresh could still tick between the count's reset and the
      // reload (CI, 2026-12-01: a fourth read on a loaded machine), and the new page's
      // ticks then run from its load.
      agent.on('framenavigated', (frame) => {
        if (frame !== agent.mainFrame()) return;
        reads.length = 0;
        since = Date.now();
      });
      proxy.restore();
      await agent.context().setOffline(false);
      await agent.getByTestId('connection-state').filter({ hasText: 'online' }).waitFor({ timeout: waitMs(20000) });
      for (const customer of customers) await customer.getByTestId('peer-back').waitFor({ timeout: waitMs(15000) });
      // What the reconnect's frames ask for is asked within a second and a half of them (a
      // chat's change after 0.3 s, a line's after 1 s): a read in flight plus one queued at
      // most, never one per chat (the periodic refresh may be the one in flight).
      await agent.waitForTimeout(2500);
      const reconnectBound = 2 + ticksWithin(since, false);
      assert.ok(reads.length <= reconnectBound, `reads of the list on a reconnect: ${reads.length} (at most ${reconnectBound})\n${reads.join('\n')}`);

      // A reload: the welcome brings every chat back, each panel with its header; the list
      // is read as the console shows and once more for the chats, not once per chat.
      reads.length = 0;
      since = Date.now();
      await agent.reload();
      await agent.getByTestId('connection-state').filter({ hasText: 'online' }).waitFor({ timeout: waitMs(20000) });
      for (const i of customers.keys()) await panelOf(agent, `Reader ${i} ${label}`).getByTestId('chat-conversation-controls').waitFor({ state: 'attached' });
      await agent.waitForTimeout(2500);
      const reloadBound = 2 + ticksWithin(since, true);
      assert.ok(reads.length >= 1 && reads.length <= reloadBound, `reads of the list on a reload: ${reads.length} (at most ${reloadBound})\n${reads.join('\n')}`);

      // A reload whose welcome comes only after the list's first read is answered (a slow
      // socket, a quick list): the panels it brings back, drawn together, ask for one read
      // together, not one each (the hub's frames are held here until that answer).
      reads.length = 0;
      since = Date.now();
      // The wait covers the whole reload (page, session check, labels, list), so it has the
      // reload's budget, as the waits below: starved of CPU beside the cluster tests, a reload
      // took longer than 8 s (CI, 2026-11-30).
      const firstReadAnswered = agent.waitForResponse((r) => {
        const u = new URL(r.url());
        return u.pathname === '/api/inbox' && !u.searchParams.has('limit');
      }, { timeout: waitMs(20000) });
      await agent.routeWebSocket(/\/ws$/, (page) => {
        const hub = page.connectToServer();
        const held = [];
        let holding = true;
        hub.onMessage((m) => { if (holding) held.push(m); else page.send(m); });
        firstReadAnswered.then(() => agent.waitForTimeout(200)).then(() => {
          holding = false;
          for (const m of held.splice(0)) page.send(m);
        });
      });
      await agent.reload();
      await agent.getByTestId('connection-state').filter({ hasText: 'online' }).waitFor({ timeout: waitMs(20000) });
      for (const i of customers.keys()) await panelOf(agent, `Reader ${i} ${label}`).getByTestId('chat-conversation-controls').waitFor({ state: 'attached' });
      await agent.waitForTimeout(2500);
      const lateBound = 2 + ticksWithin(since, true);
      assert.ok(reads.length >= 1 && reads.length <= lateBound, `reads of the list on a reload with a late welcome: ${reads.length} (at most ${lateBound})\n${reads.join('\n')}`);
    });
  });
}

test('a session that really ended still leads to the sign-in screen on reconnect', async () => {
  proxy.restore();
  await withShots('agent-session-ended', async (pages) => {
    const ida = await createAgent(hub, { username: 'ida', display_name: 'Ida', categories: ['sales'] });
    const [agent] = await openPages(browser, pages, 1);
    await agentSignsIn(agent, { url: proxy.url }, ida, { available: false });
    // The session cookie is dropped (as when it expired): the next /api/me answers 401.
    await agent.context().clearCookies();
    proxy.cut();
    proxy.restore();
    await agent.getByTestId('login').waitFor({ timeout: waitMs(20000) });
    await agent.getByTestId('page-notice').filter({ hasText: 'session has ended' }).waitFor();
  });
});

test('a signed-in page that cannot reach /api/me at load keeps asking instead of showing the sign-in form', async () => {
  proxy.restore();
  await withShots('me-unreachable-at-load', async (pages) => {
    const jan = await createAgent(hub, { username: 'janek', display_name: 'Janek', categories: ['sales'] });
    const [agent, admin] = await openPages(browser, pages, 2);
    await agentSignsIn(agent, hub, jan, { available: false });
    await admin.goto(`${hub.url}/admin.html`);
    await admin.getByTestId('username').fill('admin');
    await admin.getByTestId('password').fill(ADMIN_PASSWORD);
    await admin.getByTestId('login-button').click();
    await admin.getByTestId('sign-out').waitFor();

    // Each page load's first two /api/me requests fail as a dropped network would; later ones go through.
    let failures = 0;
    for (const page of [agent, admin]) {
      await page.context().route('**/api/me', (route) => (failures++ < 2 ? route.abort('connectionreset') : route.continue()));
    }
    const signedInShows = {
      'agent.html': (p) => p.getByTestId('connection-state').filter({ hasText: 'online' }),
      // Staff are joined to the buddy list by the hub; a public visitor would see the join form.
      'buddy.html': (p) => p.getByTestId('me').filter({ hasText: 'You are Janek' }),
      'admin.html': (p) => p.getByTestId('sign-out'),
    };
    for (const [file, signedIn] of Object.entries(signedInShows)) {
      const page = file === 'admin.html' ? admin : agent;
      failures = 0;
      await page.goto(`${hub.url}/${file}`);
      await page.getByTestId('page-notice').filter({ hasText: 'Cannot reach the hub' }).waitFor();
      await signedIn(page).waitFor({ timeout: waitMs(15000) });
      assert.ok(failures >= 3, `${file}: /api/me was asked again after failing`);
      assert.equal(await page.getByTestId('page-notice').isVisible(), false, `${file}: the notice goes once the hub answers`);
      if (file !== 'buddy.html') assert.equal(await page.getByTestId('login').isVisible(), false, `${file}: no sign-in form`);
    }
  });
});
