// Erasing a customer's data from the admin page's Archive view: the admin finds the
// customer by email, presses Erase twice (the second press confirms), sees what went,
// the conversation leaves the archive, and the log lists the erasure without the email.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createAgent, agentSignsIn, customerSocket, withShots, shot, hubAndBrowser, startForFile, openPages, adminSignsIn } from './helpers.mjs';

let hub, browser;
startForFile(() => hubAndBrowser(), (started) => ({ hub, browser } = started));

test('an admin erases a customer by email from the archive view', () => withShots('erasure', async (pages) => {
  const agent = await createAgent(hub, { username: 'lee', display_name: 'Lee', categories: ['general'] });
  const [agentPage] = await openPages(browser, pages, 1);
  await agentSignsIn(agentPage, hub, agent);
  const [customer] = await openPages(browser, pages, 1);
  await customerSocket(customer, hub, { name: 'Erin', category: 'general', email: 'erin@example.com' }, 'please forget me');

  const [admin] = await openPages(browser, pages, 1);
  await adminSignsIn(admin, hub, 'archive');
  await admin.getByTestId('archive-row').filter({ hasText: 'Erin' }).getByTestId('archive-open').click();
  // The conversation shows the customer's details with its transcript.
  await admin.getByTestId('archive-customer').filter({ hasText: 'Email: erin@example.com' }).waitFor();
  await admin.getByTestId('archive-message').filter({ hasText: 'please forget me' }).waitFor();

  await admin.getByTestId('erasure').locator('summary').click();
  await admin.getByTestId('erasure-key').fill('ERIN@example.com');
  await admin.getByTestId('erasure-button').click();
  assert.match(await admin.getByTestId('erasure-button').innerText(), /Press again/);
  assert.equal(await admin.getByTestId('erasure-row').count(), 0, 'nothing erased on the first press');
  await admin.getByTestId('erasure-button').click();
  await admin.getByTestId('erasure-result').filter({ hasText: 'Erased 1 conversation' }).waitFor();
  await admin.getByTestId('erasure-row').waitFor();
  assert.doesNotMatch(await admin.getByTestId('erasure-log').innerText(), /erin/i);
  await admin.getByTestId('archive-search').click();
  await admin.getByTestId('archive-status').or(admin.getByTestId('archive-row')).first().waitFor();
  await admin.waitForFunction(() => ![...document.querySelectorAll('[data-testid="archive-row"]')].some((r) => r.textContent.includes('Erin')));
  await shot(admin, 'erasure-admin');
}));
