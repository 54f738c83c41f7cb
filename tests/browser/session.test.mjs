// Sessions and the pages: a session ended elsewhere (an admin changes the agent's
// password) closes the agent page's socket (4001) and the page says so and shows
// the sign-in form, instead of staying "online" on a socket that takes no chats.

import { test, before, after } from 'node:test';
import { createAgent, agentSignsIn, adminToken, apiCall, withShots, hubAndBrowser, stopAll, openPages } from './helpers.mjs';

let hub;
let browser;
before(async () => { ({ hub, browser } = await hubAndBrowser()); });
after(() => stopAll(browser, hub));

test('an agent whose password an admin changes is shown the sign-in form', async () => {
  await withShots('session-revoked', async (pages) => {
    const agent = await createAgent(hub, { username: 'rita', display_name: 'Rita', categories: ['general'] });
    const [page] = await openPages(browser, pages, 1);
    await agentSignsIn(page, hub, agent);
    const admin = await adminToken(hub);
    const res = await apiCall(hub, 'PATCH', `/api/admin/agents/${agent.id}`, { password: 'a-brand-new-password' }, admin);
    if (res.status !== 200) throw new Error(`password change failed: ${JSON.stringify(res.data)}`);
    await page.getByTestId('login').waitFor({ state: 'visible' });
    await page.getByTestId('page-notice').filter({ hasText: 'session has ended' }).waitFor();
  });
});
