// Shared harness for the browser tests: starts a real hub binary on a free
// port, launches the system's Chromium headless shell through playwright-core
// (never a downloaded browser), and offers small helpers for sign-in and screenshots.

import { spawn } from 'node:child_process';
import net from 'node:net';
import { mkdirSync, mkdtempSync, existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import assert from 'node:assert/strict';
import { before, after } from 'node:test';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ADMIN_PASSWORD = 'admin-password';
export const SHOTS = path.join(here, 'screenshots');
mkdirSync(SHOTS, { recursive: true });

const BIN = process.env.SWITCHBOARD_BIN
  ? path.resolve(process.env.SWITCHBOARD_BIN)
  : path.resolve(here, '../../target/debug/switchboard');
// Debian's chromium-headless-shell: Chromium's old headless mode, without the full browser's
// window and compositing machinery, which no test looks at: it halved the phase's CPU.
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium-headless-shell';
// The full browser (its new headless mode), for the few tests of what the shell does
// otherwise than a person's browser: it tells a page a notification permission granted
// through playwright is "denied", and gives the media devices new ids in every document.
const FULL_CHROMIUM = process.env.FULL_CHROMIUM_BIN || '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** Starts the hub on 127.0.0.1:0 and resolves once its banner names the port. */
export async function startHub(extraEnv = {}) {
  if (!existsSync(BIN)) throw new Error(`hub binary not found at ${BIN}; run \`cargo build --bin switchboard\` or set SWITCHBOARD_BIN`);
  // Each hub its own data directory: a hub on MongoDB keeps its outage spool there, and
  // one left in the tree would be replayed into the next run's store. Removed once the
  // hub stopped (one a test names itself is the test's).
  const dataDir = extraEnv.DATA_DIR ? null : mkdtempSync(path.join(os.tmpdir(), 'switchboard-browser-'));
  const child = spawn(BIN, [], {
    env: {
      PATH: process.env.PATH,
      STORE: 'memory',
      ...(dataDir ? { DATA_DIR: dataDir } : {}),
      BIND_ADDR: '127.0.0.1:0',
      ADMIN_PASSWORD,
      RESUME_GRACE_SECS: '30',
      RUST_LOG: 'warn',
      // Debug builds only: password hashes as light as an in-process test hub's (every
      // test signs in; the standard cost buys nothing here).
      SWITCHBOARD_TEST_LIGHT_PASSWORD_HASHES: '1',
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`hub did not start within ${waitMs(15)} s:\n${output}`)), waitMs(15000));
    const onData = (chunk) => {
      output += chunk;
      const m = output.match(/listening on (http:\/\/[\d.]+:\d+)/);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (c) => { output += c; });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`hub exited with ${code}:\n${output}`)); });
  }).catch((e) => {
    child.kill('SIGKILL');
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    throw e;
  });
  child.removeAllListeners('exit');
  return {
    url,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A free loopback port (the kernel's pick, released for the caller to listen on). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => { const { port } = server.address(); server.close(() => resolve(port)); });
  });
}

/**
 * A hub (`startHub(env)`) and a browser (a media one with `media`), for a file's `before`:
 * `({ hub, browser } = await hubAndBrowser())`.
 */
export async function hubAndBrowser(env = {}, { media = false } = {}) {
  const hub = await startHub(env);
  const browser = await (media ? launchMediaBrowser() : launchBrowser());
  return { hub, browser };
}

/** As `hubAndBrowser`, the hub sending mail to a real SMTP sink (`startSmtpSink`), also returned. */
export async function hubBrowserAndMail(env = {}) {
  const sink = await startSmtpSink();
  return { ...(await hubAndBrowser({ SMTP_URL: `smtp://127.0.0.1:${sink.port}`, ...env })), sink };
}

/** What `start` starts (an object of them, as `hubAndBrowser` or `hubBrowserAndMail` give),
 *  for a whole test file: started before its tests and handed to `set`, and stopped after
 *  them, the browser first, then the rest in order. */
export function startForFile(start, set) {
  let started;
  before(async () => set((started = await start())));
  after(() => {
    const { browser, ...rest } = started ?? {};
    return stopAll(browser, ...Object.values(rest));
  });
}

/** As `hubAndBrowser`, the hub also serving its demo shop (`DEMO_HOST_PORT`) on "localhost", the
 *  hub itself being on 127.0.0.1 (two origins, as for a real site): the shop's address too. */
export async function hubBrowserAndShop(env = {}) {
  const port = await freePort();
  return { ...(await hubAndBrowser({ DEMO_HOST_PORT: String(port), ...env })), shop: `http://localhost:${port}` };
}

/** Closes or stops each of `things` (a browser, a proxy, a hub, a sink...) in order, for a file's `after`. */
export async function stopAll(...things) {
  for (const thing of things) {
    if (thing?.close) await thing.close();
    else await thing?.stop();
  }
}

/** Launches Chromium's headless shell, or with `full` the full browser; playwright gives every
 *  launch a fresh temporary user-data dir. */
export function launchBrowser({ full = false } = {}) {
  return chromium.launch({ executablePath: full ? FULL_CHROMIUM : CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}

/** The viewport of a page opened without one (a laptop's). */
export const DEFAULT_SIZE = { width: 1280, height: 860 };

/**
 * A wait's budget: `ms` times BROWSER_WAIT_SCALE (1 unless set). A wait is for an event, not a
 * bound on speed: `make test` runs the pages beside the Rust tests under SCHED_IDLE, where
 * they get no CPU at all while the Rust tests keep both cores busy, and there it sets the
 * scale to 3 (CI, 2026-11-30: an 8 s wait for a reload's first read; 2026-12-01: a 15 s
 * `page.goto` of agent.html). A test that passes waits no longer for it.
 */
const WAIT_SCALE = Number(process.env.BROWSER_WAIT_SCALE || 1);
if (!(WAIT_SCALE >= 1)) throw new Error(`BROWSER_WAIT_SCALE must be a number of at least 1, not ${process.env.BROWSER_WAIT_SCALE}`);
export const waitMs = (ms) => ms * WAIT_SCALE;

/**
 * A new isolated browser context (own cookies and storage) with one page; `options` are
 * more of playwright's context options (e.g. `timezoneId`).
 */
export async function newPage(browser, viewport = DEFAULT_SIZE, options = {}) {
  const context = await browser.newContext({ viewport, ...options });
  // Every wait and navigation without a budget of its own (see waitMs).
  context.setDefaultTimeout(waitMs(15000));
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error(`[page error] ${e.message}`));
  if (process.env.PAGE_CONSOLE) page.on('console', (m) => console.error(`[console] ${m.text()}`));
  keepFrames(page);
  return page;
}

/** The last websocket frames each page sent and got, printed by `withShots` when a test fails. */
const FRAMES = new WeakMap();
/** Frames kept a page: enough for the moments before a failed wait, not a whole test's. */
const FRAMES_KEPT = 60;

function keepFrames(page) {
  const kept = [];
  FRAMES.set(page, kept);
  const keep = (dir, payload) => {
    kept.push(`${new Date().toISOString().slice(11, 23)} ${dir} ${String(payload).slice(0, 300)}`);
    if (kept.length > FRAMES_KEPT) kept.shift();
  };
  page.on('websocket', (ws) => {
    keep('open', ws.url());
    ws.on('framesent', (f) => keep('>>', f.payload));
    ws.on('framereceived', (f) => keep('<<', f.payload));
    ws.on('close', () => keep('closed', ws.url()));
  });
}

/**
 * Pages of their own (as `newPage`), opened in order and added to `pages` (a `withShots`
 * body's): `sizes` is how many at the default size, or each one's viewport.
 */
export async function openPages(browser, pages, sizes) {
  const opened = [];
  for (const size of typeof sizes === 'number' ? Array(sizes).fill(DEFAULT_SIZE) : sizes) {
    opened.push(await newPage(browser, size));
  }
  pages.push(...opened);
  return opened;
}

/** Signs in as the admin on admin.html's `view`, with the button or (`enter`) the Enter key. */
export async function adminSignsIn(page, hub, view, { enter = false } = {}) {
  await page.goto(`${hub.url}/admin.html#${view}`);
  await page.getByTestId('username').fill('admin');
  await page.getByTestId('password').fill(ADMIN_PASSWORD);
  if (enter) await page.getByTestId('password').press('Enter');
  else await page.getByTestId('login-button').click();
}

/** The page (a new tab) that clicking `target` on `page` opens, added to `pages`. */
export async function openedBy(page, pages, target) {
  const [opened] = await Promise.all([page.context().waitForEvent('page'), target.click()]);
  pages.push(opened);
  return opened;
}

/** Types `text` into the message box of `place` (a customer's page, an agent's chat panel) and sends it with Enter. */
export async function sendMessage(place, text) {
  await place.getByTestId('message-input').fill(text);
  await place.getByTestId('message-input').press('Enter');
}

/** `from` (a page or a chat panel) writes `text` and waits until `to` shows it. */
export async function says(from, to, text) {
  await sendMessage(from, text);
  await to.getByTestId('message').filter({ hasText: text }).waitFor();
}

/** Calls the hub's JSON API directly (test setup), signed in with a bearer token when given. */
export async function apiCall(hub, method, urlPath, body, token) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(hub.url + urlPath, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, data: text ? JSON.parse(text) : null };
}

export async function adminToken(hub) {
  const res = await apiCall(hub, 'POST', '/api/login', { username: 'admin', password: ADMIN_PASSWORD });
  if (res.status !== 200) throw new Error(`admin login failed: ${JSON.stringify(res.data)}`);
  return res.data.token;
}

/** Creates an agent account through the admin API. */
export async function createAgent(hub, { username, display_name, categories, max_chats = 1, password = 'agent-password' }) {
  const token = await adminToken(hub);
  const res = await apiCall(hub, 'POST', '/api/admin/agents', { username, display_name, password, categories, max_chats }, token);
  if (res.status !== 201) throw new Error(`create agent failed: ${JSON.stringify(res.data)}`);
  return { ...res.data, password };
}

/** Signs in on agent.html and goes Available. */
export async function agentSignsIn(page, hub, agent, { available = true } = {}) {
  await page.goto(`${hub.url}/agent.html`);
  await page.getByTestId('username').fill(agent.username);
  await page.getByTestId('password').fill(agent.password);
  await page.getByTestId('login-button').click();
  await page.getByTestId('profile-text').filter({ hasText: 'Categories' }).waitFor();
  await page.getByTestId('connection-state').filter({ hasText: 'online' }).waitFor();
  if (available) {
    await page.getByTestId('availability-toggle').click();
    await page.locator('[data-testid="availability-toggle"][data-available="true"]').waitFor();
  }
}

/** Customer on index.html picks a category and joins under a name (with a first `message`, asking
 *  for `video`, when given). */
/**
 * An agent made from `spec` and signed in on a fresh page, and a fresh page for the
 * customer, opened in that order.
 */
export async function agentAndCustomerPages(browser, hub, pages, spec, signIn = {}) {
  const account = await createAgent(hub, spec);
  const [agent, customer] = await openPages(browser, pages, 2);
  await agentSignsIn(agent, hub, account, signIn);
  return { agent, customer };
}

/** An agent account made from `spec`, signed in (as `agentSignsIn`, with `signIn`) on a page of
 *  `size` that takes the tests' scripts (no CSP; with `keepCsp`, a page as any other), kept in
 *  `pages`: the page. */
export async function agentSignedInOn(browser, hub, pages, size, spec, signIn = {}, { keepCsp = false } = {}) {
  const account = await createAgent(hub, spec);
  const page = await newPage(browser, size, keepCsp ? {} : { bypassCSP: true });
  pages.push(page);
  await agentSignsIn(page, hub, account, signIn);
  return page;
}

/** The agent `spec` signed in on a page of `size` (as `agentSignedInOn`, with `page`), and
 *  customer `name` on a phone page, who joined General, was given to them and said `text`: both
 *  pages (kept in `pages`). */
export async function agentChattingWith(browser, hub, pages, size, spec, name, text, page = {}) {
  const agentPage = await agentSignedInOn(browser, hub, pages, size, spec, {}, page);
  const [customer] = await openPages(browser, pages, [{ width: 390, height: 844 }]);
  await joinedChat(customer, agentPage, hub, 'general', name);
  await sendMessage(customer, text);
  return { agentPage, customer };
}

/** The row of customer `customer`'s conversation in the conversation list on `page`. */
export const conversationRow = (page, customer) => page.locator(`[data-testid="conversation-item"][data-customer="${customer}"]`);

/** Back to the conversation list from an open chat, where the list is a view of its own (a phone). */
export async function backToTheList(page) {
  const back = page.getByTestId('back-to-list');
  if (await back.isVisible()) await back.click();
}

export async function customerJoins(page, hub, category, name, { message, video = false } = {}) {
  await page.goto(`${hub.url}/`);
  await page.getByTestId(`category-${category}`).click();
  // Nobody online in the category: the page says so first; the customer waits anyway.
  const wait = page.getByTestId('wait-anyway');
  await page.getByTestId('name-input').or(wait).first().waitFor();
  if (await wait.isVisible()) await wait.click();
  await page.getByTestId('name-input').fill(name);
  if (message) await page.getByTestId('first-message-input').fill(message);
  if (video) await page.getByTestId('video-request').check();
  await page.getByTestId('join-button').click();
  await page.getByTestId('session').waitFor();
}

/** The chat panel on an agent's console `page` for customer `name`. */
export const panelOf = (page, name) => page.locator(`[data-testid="chat-panel"][data-customer="${name}"]`);

/** Customer `name` joins `category` on `customer` (as `customerJoins`) and the agent's console
 *  `agent` shows their chat: its panel. */
export async function joinedChat(customer, agent, hub, category, name) {
  await customerJoins(customer, hub, category, name);
  const panel = panelOf(agent, name);
  await panel.waitFor();
  return panel;
}

/** The customer on `page` ends their chat (the end button, then its confirmation) and is asked
 *  for a rating. */
export async function endsChat(page) {
  await page.getByTestId('leave-button').click();
  await page.getByTestId('confirm-end-button').click();
  await page.getByTestId('rating').waitFor();
}

/** The customer comes back later in a new tab of the browser `context` (the same visitor key,
 *  no chat of its own): that tab, kept in `pages`, on the customer page, and the first earlier
 *  conversation it lists there (shown). */
export async function comesBack(hub, pages, context) {
  const later = await context.newPage();
  pages.push(later);
  await later.goto(`${hub.url}/`);
  const row = later.getByTestId('earlier-conversation').first();
  await row.waitFor();
  return { later, row };
}

/** Whether the run keeps the pages' pictures (`SCREENSHOTS=1`, for refreshing docs/screenshots):
 *  each costs Chromium a full-page paint and a PNG encode, about a quarter second of CPU, and
 *  no test reads them. A failing test's pictures are kept regardless. */
const SCREENSHOTS = process.env.SCREENSHOTS === '1';

/** Saves `page` as screenshots/`name`.png when the run keeps pictures (`SCREENSHOTS=1`). */
export async function shot(page, name, { fullPage = true } = {}) {
  if (SCREENSHOTS) await saveShot(page, name, fullPage);
}

function saveShot(page, name, fullPage = true) {
  return page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage });
}

/**
 * Runs a test body; on failure saves a screenshot of every open page first.
 * `pages` is filled by the body as it opens pages.
 */
export async function withShots(name, body) {
  const pages = [];
  try {
    await body(pages);
  } catch (error) {
    await Promise.all(pages.map((p, i) => (p.isClosed() ? null : saveShot(p, `FAILED-${name}-${i}`).catch(() => {}))));
    pages.forEach((p, i) => {
      const frames = FRAMES.get(p);
      if (frames?.length) console.error(`[${name} page ${i}: its last websocket frames]\n${frames.join('\n')}`);
    });
    throw error;
  } finally {
    await Promise.all(pages.map((p) => p.context().close().catch(() => {})));
  }
}

/**
 * A TCP proxy on loopback in front of the hub, so a test can cut one browser's
 * network for real: Chromium's offline emulation fails new requests but leaves
 * an open websocket connected. `cut()` resets every connection and every new
 * one until `restore()`; `hold()` keeps what the hub sends back (queued, in
 * order) until `release()`, so frames can be made to arrive late; `silence()` drops
 * every byte of the connections open then, both ways, with no reset, as a network that
 * died quietly (new connections go through).
 */
export async function startProxy(hub) {
  const target = new URL(hub.url);
  const pairs = new Set();
  let cut = false;
  let held = false;
  let uploadsHeld = false;
  const server = net.createServer((client) => {
    if (cut) { client.resetAndDestroy(); return; }
    const upstream = net.connect(Number(target.port), target.hostname);
    const pair = { client, upstream, queue: [], toHub: [], websocket: false, upload: false, silent: false };
    pairs.add(pair);
    const close = () => {
      // A dead network tells the browser nothing, not even that the hub closed its end.
      if (pair.silent) { upstream.destroy(); return; }
      pairs.delete(pair); client.destroy(); upstream.destroy();
    };
    client.on('data', (chunk) => {
      // An upload's request, from its first line on, while uploads are held: kept here, and
      // dropped with the connection if the browser closes it first.
      if (pair.silent) return;
      if (uploadsHeld && chunk.subarray(0, 22).toString('latin1') === 'POST /api/attachments?') pair.upload = true;
      if (pair.upload && uploadsHeld) pair.toHub.push(chunk); else upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (pair.silent) return;
      if (chunk.subarray(0, 12).toString('latin1') === 'HTTP/1.1 101') pair.websocket = true;
      if (held) pair.queue.push(chunk); else client.write(chunk);
    });
    for (const s of [client, upstream]) { s.on('error', close); s.on('close', close); }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    cut() {
      cut = true;
      for (const { client, upstream } of pairs) { client.resetAndDestroy(); upstream.destroy(); }
      pairs.clear();
    },
    restore() { cut = false; },
    silence() { for (const pair of pairs) pair.silent = true; },
    /** Sends `frame` (JSON) to the browser on every websocket through the proxy, as if the
     *  hub had: one unmasked text frame, written between the hub's own frames. */
    inject(frame) {
      const payload = Buffer.from(JSON.stringify(frame));
      const header = payload.length < 126 ? Buffer.from([0x81, payload.length])
        : Buffer.from([0x81, 126, payload.length >> 8, payload.length & 0xff]);
      for (const pair of pairs) if (pair.websocket) pair.client.write(Buffer.concat([header, payload]));
    },
    hold() { held = true; },
    /** Keeps the uploads' requests (POST /api/attachments) from the hub, every byte, until
     *  `releaseUploads()`: an upload the page cancels meanwhile never reaches it. */
    holdUploads() { uploadsHeld = true; },
    releaseUploads() {
      uploadsHeld = false;
      for (const pair of pairs) if (pair.upload) { pair.upload = false; for (const chunk of pair.toHub.splice(0)) pair.upstream.write(chunk); }
    },
    /** What the hub has sent back since `hold()`, not yet let through (latin1 text). */
    heldText() { return [...pairs].flatMap((pair) => pair.queue).map((c) => c.toString('latin1')).join(''); },
    release() {
      held = false;
      for (const pair of pairs) { for (const chunk of pair.queue.splice(0)) pair.client.write(chunk); }
    },
    close() {
      for (const { client, upstream } of pairs) { client.destroy(); upstream.destroy(); }
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

/**
 * A real MongoDB-wire server (secantusdb from the repo's .venv, in memory) on a
 * free loopback port, for tests that need a slow store: `freeze()` stops the
 * process (SIGSTOP), so writes hang as on a stalled database, `thaw()` resumes it.
 */
export async function startMongo() {
  const server = process.env.SWITCHBOARD_TEST_MONGOD || path.resolve(here, '../../.venv/bin/secantusd-py');
  if (!existsSync(server)) throw new Error(`MongoDB-wire server not found at ${server}; run scripts/ensure-test-deps.sh`);
  // Port 0 and the server's own "listening on" line: the port is the kernel's pick and
  // the process answering is this one, not another that happened to hold a chosen port.
  const child = spawn(server, ['--port', '0', '--storage-path', ':memory:'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (c) => { output += c; });
  child.stderr.on('data', (c) => { output += c; });
  const deadline = Date.now() + waitMs(20000);
  let port;
  for (;;) {
    const listening = /listening on [^\s:]+:(\d+)/.exec(output);
    if (listening) { port = Number(listening[1]); break; }
    if (child.exitCode !== null) throw new Error(`MongoDB-wire server exited with ${child.exitCode}:\n${output}`);
    if (Date.now() > deadline) { child.kill('SIGKILL'); throw new Error(`MongoDB-wire server did not listen within ${waitMs(20)} s:\n${output}`); }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    uri: `mongodb://127.0.0.1:${port}`,
    freeze() { child.kill('SIGSTOP'); },
    thaw() { child.kill('SIGCONT'); },
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGCONT');
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

// ---- rooms and 1-to-1 video ----
/** Chromium with a fake camera and microphone (granted without asking), whose peer
 *  connections may use loopback addresses, the only network the tests have (`full`: as
 *  `launchBrowser`). The camera sends 5 frames a second, not Chromium's 20: each frame is
 *  drawn, VP8-encoded and decoded again, and no test needs more than the first (room and
 *  room-ui took 27 CPU-seconds instead of 31, 2026-11-30). */
export function launchMediaBrowser({ full = false } = {}) {
  return chromium.launch({
    executablePath: full ? FULL_CHROMIUM : CHROMIUM,
    headless: true,
    args: [...CHROMIUM_ARGS, '--use-fake-device-for-media-stream=fps=5', '--use-fake-ui-for-media-stream',
      '--allow-loopback-in-peer-connection'],
  });
}

// ---- offline messages: a real SMTP sink for tests that read mail ----
/** A real SMTP sink (aiosmtpd from the repo's .venv) on a free loopback port, writing
 *  every mail into a fresh Maildir; `mails()` reads them raw. */
export async function startSmtpSink() {
  const python = path.resolve(here, '../../.venv/bin/python');
  if (!existsSync(python)) throw new Error(`${python} is missing: run scripts/ensure-test-deps.sh (make test does)`);
  const port = await freePort();
  const maildir = path.join(mkdtempSync(path.join(os.tmpdir(), 'switchboard-sink-')), 'maildir');
  // tests/smtp_sink.py: aiosmtpd's maildir handler, refusing (550) recipients starting with "bounce".
  const child = spawn(python, ['-m', 'aiosmtpd', '-n', '-c', 'smtp_sink.Sink', maildir, '-l', `127.0.0.1:${port}`],
    { stdio: 'ignore', env: { ...process.env, PYTHONPATH: path.resolve(here, '..') } });
  for (let i = 0; i < waitMs(200); i += 1) {
    const up = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => { socket.end(); resolve(true); });
      socket.on('error', () => resolve(false));
    });
    if (up) {
      return {
        port,
        mails() {
          const dir = path.join(maildir, 'new');
          return existsSync(dir) ? readdirSync(dir).map((f) => readFileSync(path.join(dir, f), 'utf8')) : [];
        },
        stop() { child.kill(); rmSync(path.dirname(maildir), { recursive: true, force: true }); },
      };
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill();
  throw new Error(`aiosmtpd did not listen on ${port}`);
}

/** A raw mail's text, whichever transfer encoding its parts got (quoted-printable or base64). */
export function decodedMail(raw) {
  const qp = raw.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16)));
  const parts = [Buffer.from(qp, 'latin1').toString('utf8')];
  for (const block of raw.split(/\r?\n\r?\n/)) {
    const lines = block.split(/\r?\n/).filter((l) => /^[A-Za-z0-9+/=]+$/.test(l));
    if (lines.length > 0) parts.push(Buffer.from(lines.join(''), 'base64').toString('utf8'));
  }
  return parts.join('\n');
}

/** Waits for a mail to `to` in `sink` and returns it decoded. */
export async function mailTo(sink, to) {
  for (let i = 0; i < waitMs(300); i += 1) {
    const found = sink.mails().find((m) => new RegExp(`^To: .*${to.replace('.', '\\.')}`, 'mi').test(m));
    if (found) return decodedMail(found);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no mail to ${to}; got ${sink.mails().length} others`);
}

/** Fills the fields of `page` named by `data-testid` with their values, in order. */
export async function fillIn(page, fields) {
  for (const [testid, value] of Object.entries(fields)) await page.getByTestId(testid).fill(value);
}

/** The customer's phone and the password the room tests' rooms are opened with. */
export const ROOM_PHONE = '+4915112345678';
export const ROOM_PASSWORD = 'tulip-42';

/**
 * An agent `username` (display name `display_name`) with an open customer room (a meeting
 * room, not one opened from a chat) that asks for `phone` and `password`: the room's id,
 * the agent's bearer token and password, and a room token for the agent.
 */
export async function openRoom(hub, username, { phone, password, display_name = 'Anna Berg', title = 'Your contract' }) {
  const agent = await createAgent(hub, { username, display_name, categories: ['general'] });
  const login = await apiCall(hub, 'POST', '/api/login', { username, password: agent.password });
  const bearer = login.data.token;
  const room = await apiCall(hub, 'POST', '/api/rooms', { title, audience: 'customer', phone, password }, bearer);
  if (room.status !== 201) throw new Error(`create room failed: ${JSON.stringify(room.data)}`);
  const token = await apiCall(hub, 'POST', `/api/rooms/${room.data.id}/token`, undefined, bearer);
  return { id: room.data.id, agentToken: token.data.token, bearer, username, password: agent.password };
}

/**
 * On room.html's join form: fills the phone (unless left as it is), the password and the
 * name, joins, and waits to be in the room.
 */
export async function joinsRoom(page, { phone, password, name }) {
  if (phone !== undefined) await page.getByTestId('join-phone').fill(phone);
  await page.getByTestId('join-password').fill(password);
  await page.getByTestId('join-name').fill(name);
  await page.getByTestId('join-button').click();
  await page.getByTestId('room-state').filter({ hasText: 'in the room' }).waitFor();
}

/**
 * A customer as a third-party client: on `page` (any page of the hub), a websocket that
 * sends `join` (the given fields: name, category, details) and, once paired, `text` as a
 * message; resolves once it is acknowledged. The socket stays open as `window.customer`.
 */
export async function customerSocket(page, hub, join, text) {
  await page.goto(`${hub.url}/healthz`);
  await page.evaluate(({ url, join, text }) => new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    window.customer = ws;
    ws.onopen = () => ws.send(JSON.stringify({ type: 'join', ...join }));
    ws.onmessage = (e) => {
      const f = JSON.parse(e.data);
      if (f.type === 'chat_started') ws.send(JSON.stringify({ type: 'message', text, client_id: 'c1' }));
      if (f.type === 'ack') resolve();
      if (f.type === 'error') reject(new Error(e.data));
    };
  }), { url: `${hub.url.replace('http', 'ws')}/ws/customer`, join, text });
}

/** A minimal PDF, enough for the hub to tell it from its bytes. */
export const PDF = Buffer.from('%PDF-1.4\n%\xe2\xe3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n', 'latin1');

/** Pastes a 400 × 300 picture (drawn on a canvas) into the message box, as a screenshot is pasted. */
export async function pasteScreenshot(page) {
  await page.getByTestId('message-input').focus();
  await page.evaluate(async () => {
    const canvas = document.createElement('canvas');
    canvas.width = 400;
    canvas.height = 300;
    const g = canvas.getContext('2d');
    g.fillStyle = '#c0392b';
    g.fillRect(0, 0, 400, 300);
    g.fillStyle = '#fff';
    g.fillRect(50, 50, 120, 60);
    const blob = await new Promise((r) => canvas.toBlob(r, 'image/png'));
    const data = new DataTransfer();
    data.items.add(new File([blob], 'image.png', { type: 'image/png' }));
    const box = document.querySelector('[data-testid="message-input"]');
    box.dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));
  });
}

const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

/**
 * The serious and critical axe-core violations on the page as it is now, one line each
 * (the page's context needs `bypassCSP`: the pages' CSP forbids the injected script).
 * axe is injected once per document: parsing its half megabyte cost about as much as a
 * check, and a test checks one document in several states.
 */
export async function violations(page) {
  if (!(await page.evaluate(() => Boolean(window.axe)))) await page.addScriptTag({ path: AXE });
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`);
}

/** No serious or critical axe-core violation on `page` (`what` names it in the failure). */
export async function expectClean(page, what) {
  const found = await violations(page);
  assert.deepEqual(found, [], `${what}: ${found.length} serious accessibility violations:\n${found.join('\n')}`);
}
