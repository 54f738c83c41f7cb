// Searching the archive from the admin page and exporting the search as CSV: an admin
// types a word of one customer's message, sees that conversation only (the word marked
// in the message found), presses Export CSV and gets a file holding that conversation's
// rows, a formula-looking message defused.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { newPage, createAgent, agentSignsIn, customerSocket, withShots, shot, hubAndBrowser, stopAll, openPages, adminSignsIn } from './helpers.mjs';

let hub;
let browser;
before(async () => { ({ hub, browser } = await hubAndBrowser()); });
after(() => stopAll(browser, hub));

/** The cells of a small CSV (RFC 4180 quoting). */
function parseCsv(text) {
  const rows = [];
  let row = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { cell += '"'; i += 1; } else if (c === '"') quoted = false; else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { row.push(cell); cell = ''; } else if (c === '\n') { row.push(cell); rows.push(row); row = []; cell = ''; } else if (c !== '\r') cell += c;
  }
  if (cell || row.length) { row.push(cell); rows.push(row); }
  return rows;
}

test('an admin searches the archive and exports the search as CSV', () => withShots('search', async (pages) => {
  const agent = await createAgent(hub, { username: 'sam', display_name: 'Sam', categories: ['general'], max_chats: 2 });
  const [agentPage] = await openPages(browser, pages, 1);
  await agentSignsIn(agentPage, hub, agent);
  for (const [name, text] of [['Nora', '=SUM(A1) is what my Invoice shows'], ['Omar', 'where is my parcel?']]) {
    const [customer] = await openPages(browser, pages, 1);
    await customerSocket(customer, hub, { name, category: 'general' }, text);
  }

  const admin = await newPage(browser, undefined, { acceptDownloads: true });
  pages.push(admin);
  await adminSignsIn(admin, hub, 'archive');
  await admin.getByTestId('archive-row').filter({ hasText: 'Omar' }).waitFor();
  // Each row shows its status; the status filter narrows the list (both chats are open).
  assert.equal(await admin.getByTestId('archive-row').filter({ hasText: 'Omar' }).getByTestId('archive-row-status').innerText(), 'Open');
  await admin.getByTestId('archive-status-filter').selectOption('resolved');
  await admin.getByTestId('archive-search').click();
  await admin.getByTestId('archive-status').filter({ hasText: 'No conversations match.' }).waitFor();
  await admin.getByTestId('archive-status-filter').selectOption('open');
  await admin.getByTestId('archive-search').click();
  await admin.waitForFunction(() => document.querySelectorAll('[data-testid="archive-row"]').length === 2);

  await admin.getByTestId('archive-q').fill('invoice');
  await admin.getByTestId('archive-search').click();
  await admin.getByTestId('archive-hit').waitFor();
  await admin.waitForFunction(() => document.querySelectorAll('[data-testid="archive-row"]').length === 1);
  const row = admin.getByTestId('archive-row');
  assert.match(await row.innerText(), /Nora/);
  assert.equal(await row.getByTestId('archive-hit').locator('mark').innerText(), 'Invoice');
  assert.match(await admin.getByTestId('archive-page').innerText(), /1–1 of 1/);
  await shot(admin, 'search-admin');

  const [download] = await Promise.all([
    admin.waitForEvent('download'),
    admin.getByTestId('archive-export-csv').click(),
  ]);
  assert.equal(download.suggestedFilename(), 'conversations.csv');
  const rows = parseCsv(await readFile(await download.path(), 'utf8'));
  const header = rows[0];
  assert.deepEqual(header.slice(0, 4), ['conversation_id', 'kind', 'category', 'customer_name']);
  const body = rows.slice(1);
  assert.equal(body.length, 1, JSON.stringify(rows));
  const cell = (name) => body[0][header.indexOf(name)];
  assert.equal(cell('customer_name'), 'Nora');
  assert.equal(cell('agent_name'), 'Sam');
  assert.equal(cell('from'), 'customer');
  assert.equal(cell('text'), "'=SUM(A1) is what my Invoice shows", 'a formula is defused');
  assert.ok(!rows.flat().some((c) => c.includes('Omar') || c.includes('parcel')), 'only the search');
  await admin.getByTestId('archive-export-status').filter({ hasText: 'Downloaded' }).waitFor();

  // A search of no words is refused by name, the list left as it was.
  await admin.getByTestId('archive-q').fill('?!');
  await admin.getByTestId('archive-search').click();
  await admin.getByTestId('archive-status').filter({ hasText: 'no words' }).waitFor();
}));
