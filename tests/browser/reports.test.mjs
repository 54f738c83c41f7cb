// The admin's Reports view: a day with one chat served (the agent answered, then ended it)
// and one customer who left the line unserved. The admin sees the totals, the two charts
// drawn by the hub-served chart library, the tables per day and per agent, and exports the
// same report as CSV (the file downloaded and read); at phone width the view still fits.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startHub, newPage, createAgent, agentSignsIn, customerSocket, withShots, shot, ADMIN_PASSWORD, hubAndBrowser, stopAll, openPages, adminSignsIn, sendMessage } from './helpers.mjs';

let hub;
let browser;
before(async () => { ({ hub, browser } = await hubAndBrowser()); });
after(() => stopAll(browser, hub));

async function adminOn(page, view) {
  await page.goto(`${hub.url}/admin.html#${view}`);
  await page.getByTestId('username').fill('admin');
  await page.getByTestId('password').fill(ADMIN_PASSWORD);
  await page.getByTestId('login-button').click();
}

test('an admin reads the day in numbers and charts, and exports it as CSV', () => withShots('reports', async (pages) => {
  const agent = await createAgent(hub, { username: 'rita', display_name: 'Rita Report', categories: ['general'], max_chats: 1 });
  const [agentPage] = await openPages(browser, pages, 1);
  await agentSignsIn(agentPage, hub, agent);
  const [carla] = await openPages(browser, pages, 1);
  await customerSocket(carla, hub, { name: 'Carla', category: 'general' }, 'where is my parcel?');
  // The agent answers from the console, then ends the chat.
  const panel = agentPage.locator('[data-testid="chat-panel"][data-customer="Carla"]');
  await panel.waitFor();
  await sendMessage(panel, 'It left the warehouse this morning.');
  await panel.getByTestId('message').filter({ hasText: 'It left the warehouse' }).first().waitFor();
  // A second customer waits (Rita takes one chat at a time) and leaves the line.
  const [dan] = await openPages(browser, pages, 1);
  await dan.goto(`${hub.url}/healthz`);
  await dan.evaluate((url) => new Promise((resolve) => {
    const ws = new WebSocket(url);
    ws.onopen = () => ws.send(JSON.stringify({ type: 'join', name: 'Dan', category: 'general' }));
    ws.onmessage = (e) => {
      const f = JSON.parse(e.data);
      if (f.type === 'queued') ws.send(JSON.stringify({ type: 'leave' }));
      if (f.type === 'removed') resolve();
    };
  }), `${hub.url.replace('http', 'ws')}/ws/customer`);
  await panel.getByTestId('end-chat').click();

  const [admin] = await openPages(browser, pages, 1);
  await adminOn(admin, 'reports');
  await admin.getByTestId('reports-tiles').getByTestId('report-conversations').waitFor();
  // The report is read in the background: show it again until both records are in.
  for (let i = 0; i < 50; i += 1) {
    const text = await admin.getByTestId('reports-tiles').innerText();
    if (/^1\s*Conversations/m.test(text) && /1 \(50 %\)\s*Abandoned/.test(text) && !/—\s*Median handle/.test(text)) break;
    await admin.waitForTimeout(200);
    await admin.getByTestId('reports-show').click();
  }
  const tiles = await admin.getByTestId('reports-tiles').innerText();
  assert.match(tiles, /^1\s*Conversations/m);
  assert.match(tiles, /1 \(50 %\)\s*Abandoned/);
  assert.doesNotMatch(tiles, /—\s*Median first response/, 'a first response was measured');
  // No bot had a conversation: none resolved by one, none handed over.
  assert.match(tiles, /0 \/ 0\s*Bot: resolved \/ handed over/);
  // Both charts drawn by Chart.js, with the day's figures in them.
  const charts = await admin.evaluate(() => ['reports-volume', 'reports-waits'].map((id) => {
    const chart = window.Chart?.getChart(document.getElementById(id));
    return chart ? chart.data.datasets.map((d) => d.data.filter((v) => v !== null).reduce((a, b) => a + b, 0)) : null;
  }));
  assert.deepEqual(charts[0], [1, 1], 'one conversation and one abandoned in the volume chart');
  assert.ok(charts[1] && charts[1].length === 2, 'the waits chart has its two lines');
  const canvasWidth = await admin.getByTestId('reports-volume').evaluate((c) => c.width);
  assert.ok(canvasWidth > 100, 'the chart has a size');
  await admin.getByTestId('report-day').filter({ hasText: 'General' }).waitFor();
  await admin.getByTestId('report-agent').filter({ hasText: 'Rita Report' }).waitFor();
  await shot(admin, 'admin-reports-desktop');

  // Export CSV: the downloaded file holds the same report.
  const [download] = await Promise.all([admin.waitForEvent('download'), admin.getByTestId('reports-csv').click()]);
  assert.match(download.suggestedFilename(), /^report-\d{4}-\d{2}-\d{2}-\d{4}-\d{2}-\d{2}\.csv$/);
  const csv = readFileSync(await download.path(), 'utf8').trim().split('\n');
  assert.match(csv[0], /^scope,day,category,category_name,agent_id,agent_name,conversations,abandoned,/);
  assert.ok(csv.some((line) => /^day,\d{4}-\d{2}-\d{2},general,General,,,1,1,/.test(line)), csv.join('\n'));
  assert.ok(csv.some((line) => line.startsWith('agent,,,,') && line.includes(',Rita Report,1,0,')), csv.join('\n'));
  assert.match(csv[csv.length - 1], /^total,,,,,,1,1,/);

  // The zone is chosen from a list, and goes with the export.
  await admin.getByTestId('reports-zone').selectOption('Asia/Tokyo');
  await admin.getByTestId('reports-show').click();
  assert.match(await admin.getByTestId('reports-csv').getAttribute('href'), /zone=Asia%2FTokyo/);

  // Phone width: the view fits (no sideways scrolling of the page).
  const [phone] = await openPages(browser, pages, [{ width: 390, height: 844 }]);
  await adminOn(phone, 'reports');
  await phone.getByTestId('report-day').first().waitFor();
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 1, `the page scrolls sideways by ${overflow}px at phone width`);
  await shot(phone, 'admin-reports-phone');
}));

test('the reports\' time zone is a list of zones that starts at the desk\'s, whatever the browser\'s', () => withShots('reports-zone', async (pages) => {
  const desk = await startHub({ APPOINTMENT_TIME_ZONE: 'Europe/Berlin' });
  try {
    const admin = await newPage(browser, { width: 1366, height: 768 }, { timezoneId: 'America/New_York' });
    pages.push(admin);
    await adminSignsIn(admin, desk, 'reports');
    await admin.getByTestId('reports-tiles').getByTestId('report-conversations').waitFor();
    const zone = admin.getByTestId('reports-zone');
    assert.equal(await zone.evaluate((z) => z.tagName), 'SELECT');
    assert.equal(await zone.inputValue(), 'Europe/Berlin', 'the desk\'s zone, not the browser\'s');
    assert.match(await zone.locator('option:checked').textContent(), /desk/i);
    const values = await zone.locator('option').evaluateAll((os) => os.map((o) => o.value));
    for (const z of ['UTC', 'America/New_York', 'Asia/Tokyo', 'Australia/Sydney']) assert.ok(values.includes(z), `${z} is offered`);
    assert.ok(values.length > 100, `every IANA zone: ${values.length}`);
    assert.match(await admin.getByTestId('reports-csv').getAttribute('href'), /zone=Europe%2FBerlin/);
    await shot(admin, 'admin-reports-zone');
  } finally {
    await desk.stop();
  }
}));
