// Offline messages: a customer opens the page while no agent is online, is told "nobody
// is online" before waiting, and leaves a message; the desk gets it by mail; an agent
// signs in and finds it in the team's one work list (Unassigned, marked "Offline
// message", how long the customer waits), answers it by email from its row (a dialog)
// and marks it handled; the reply is read from a real SMTP sink (aiosmtpd) and the
// admin's #offline view lists the message as handled. The conversation is listed for the
// customer's browser with the answer as its last line. The form at phone size and in dark mode too. While
// waiting, a `desk_status` frame (sent by hubs that know business hours; injected here
// through a proxy) shows the same notice without losing the customer's place.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startProxy, newPage, createAgent, agentSignsIn, withShots, shot, ADMIN_PASSWORD, adminToken, apiCall, mailTo, DEFAULT_SIZE, openPages, adminSignsIn, hubBrowserAndMail, startForFile, expectClean, comesBack } from './helpers.mjs';

let hub, browser, sink;
startForFile(() => hubBrowserAndMail({ MAIL_FROM: 'Help desk <desk@example.com>', OFFLINE_MAIL_TO: 'inbox@example.org', OUTBOX_POLL_SECS: '0.2' }),
  (started) => ({ hub, browser, sink } = started));

test('nobody online: the customer leaves a message, an agent answers it by email', async () => {
  await withShots('offline', async (pages) => {
    const ann = await createAgent(hub, { username: 'ann', display_name: 'Ann', categories: ['general'] });
    const [customer] = await openPages(browser, pages, [{ width: 1280, height: 800 }]);

    // Told before waiting: nobody is online in General, with the form and the choices.
    await customer.goto(`${hub.url}/`);
    await customer.getByTestId('category-general').click();
    await customer.getByTestId('offline-title').filter({ hasText: 'Nobody is online in General right now' }).waitFor();
    assert.ok(await customer.getByTestId('wait-anyway').isVisible(), 'the category is open: waiting is offered');
    assert.equal(await customer.getByTestId('session').isVisible(), false, 'not in line yet');
    await customer.getByTestId('offline-name').fill('Carla');
    // A bad address is refused by the form, by the field.
    await customer.getByTestId('offline-email').fill('carla');
    await customer.getByTestId('offline-text').fill('My parcel 1234 has not arrived.\nCan you check?');
    await customer.getByTestId('offline-send').click();
    await customer.getByTestId('offline-error').filter({ hasText: 'email address' }).waitFor();
    await customer.getByTestId('offline-email').fill('carla@example.com');
    await shot(customer, 'offline-form-desktop');
    await customer.getByTestId('offline-send').click();
    await customer.getByTestId('offline-sent').filter({ hasText: "We'll answer by email at carla@example.com" }).waitFor();
    await shot(customer, 'offline-sent-desktop');

    // The desk's address got it too.
    const desk = await mailTo(sink, 'inbox@example.org');
    assert.match(desk, /My parcel 1234 has not arrived/);

    // The agent signs in and finds it in the team's one work list (no separate block of
    // offline messages): unassigned, marked as an offline message, how long she waits.
    const agent = await newPage(browser, { width: 1280, height: 800 }, { bypassCSP: true });
    pages.push(agent);
    await agentSignsIn(agent, hub, ann, { available: false });
    assert.equal(await agent.getByTestId('offline-inbox').count(), 0, 'no separate offline block in the console');
    await agent.getByRole('button', { name: /^Unassigned/ }).click();
    const conversation = agent.locator('[data-testid="conversation-item"][data-customer="Carla"]');
    await conversation.getByTestId('conversation-offline').waitFor();
    await conversation.getByTestId('conversation-waiting').filter({ hasText: /^Waiting (<1 min|\d+ min)$/ }).waitFor();
    // Reply by email from its row: a dialog; the reply makes it hers and marks it handled.
    await conversation.getByRole('button', { name: 'Reply by email: Carla' }).click();
    const dialog = agent.getByRole('dialog', { name: 'Reply to Carla by email' });
    await dialog.getByText('carla@example.com').waitFor();
    await dialog.getByRole('button', { name: 'Send reply' }).click();
    await dialog.getByRole('alert').filter({ hasText: 'Write the answer first' }).waitFor();
    await dialog.getByLabel(/Your answer/).fill('Your parcel is at the depot; it comes tomorrow.');
    await expectClean(agent, 'the reply-by-email dialog');
    await shot(agent, 'offline-console-reply');
    await dialog.getByRole('button', { name: 'Send reply' }).click();
    await dialog.waitFor({ state: 'hidden' });

    // Now in her own list, its answer the last line.
    await agent.getByRole('button', { name: /^Mine/ }).click();
    await conversation.getByTestId('conversation-offline').waitFor();
    await conversation.getByTestId('conversation-last').filter({ hasText: 'it comes tomorrow' }).waitFor();
    // The customer's browser lists it under her conversations, open, with the answer, to
    // continue (tests/hub/offline_conversations.rs continues one).
    const { later, row: own } = await comesBack(hub, pages, customer.context());
    assert.equal(await own.getAttribute('data-status'), 'open');
    assert.match(await own.innerText(), /General[\s\S]*Ann: Your parcel is at the depot/);
    assert.ok(await own.getByTestId('continue-conversation').isVisible());
    await later.close();

    // Resolved: nothing more to do, the message marked handled as well.
    await conversation.getByRole('button', { name: 'Resolve: Carla' }).click();
    await conversation.waitFor({ state: 'detached' });

    // The reply reached the customer, read from the SMTP sink.
    const reply = await mailTo(sink, 'carla@example.com');
    assert.match(reply, /Subject: Re: your message to General/);
    assert.match(reply, /Your parcel is at the depot; it comes tomorrow\./);
    assert.match(reply, /> My parcel 1234 has not arrived\./);

    // The admin's #offline view lists it, handled, with the reply archived.
    const [admin] = await openPages(browser, pages, [{ width: 1280, height: 800 }]);
    await adminSignsIn(admin, hub, 'offline', { enter: true });
    const listed = admin.locator('[data-testid="offline-item"][data-name="Carla"]');
    await listed.getByTestId('offline-state').filter({ hasText: 'Handled' }).waitFor();
    await listed.locator('summary').click();
    await listed.getByTestId('offline-reply').filter({ hasText: 'it comes tomorrow' }).waitFor();
    await shot(admin, 'offline-admin-view');

    // On a phone, in dark mode: the console's list and the admin's view fit the screen.
    for (const [url, name] of [['/agent.html', 'console'], ['/admin.html#offline', 'admin']]) {
      const phone = await newPage(browser, { width: 390, height: 844 }, { colorScheme: 'dark' });
      pages.push(phone);
      await phone.goto(`${hub.url}${url}`);
      await phone.getByTestId('username').fill(name === 'admin' ? 'admin' : 'ann');
      await phone.getByTestId('password').fill(name === 'admin' ? ADMIN_PASSWORD : ann.password);
      await phone.getByTestId('password').press('Enter');
      if (name === 'admin') {
        const mine = phone.locator('[data-testid="offline-item"][data-name="Carla"]');
        await mine.locator('summary').click();
        await mine.getByTestId('offline-reply').first().waitFor();
      } else {
        // The work list, resolved ones shown: Carla's, marked as an offline message.
        await phone.getByTestId('conversation-filter').selectOption('resolved');
        await phone.locator('[data-testid="conversation-item"][data-customer="Carla"]').getByTestId('conversation-offline').waitFor();
      }
      const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      assert.ok(overflow <= 0, `${name}: no sideways scrolling (${overflow}px)`);
      await shot(phone, `offline-${name}-phone-dark`);
    }
  });
});

test('the notice and form fit a phone, in dark mode too', async () => {
  await withShots('offline-phone', async (pages) => {
    for (const colorScheme of ['light', 'dark']) {
      const phone = await newPage(browser, { width: 390, height: 844 }, { colorScheme });
      pages.push(phone);
      await phone.goto(`${hub.url}/`);
      await phone.getByTestId('category-sales').click();
      await phone.getByTestId('offline-title').filter({ hasText: 'Nobody is online in Sales right now' }).waitFor();
      const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      assert.ok(overflow <= 0, `no sideways scrolling (${overflow}px)`);
      for (const id of ['offline-name', 'offline-email', 'offline-text', 'offline-send', 'wait-anyway']) {
        const box = await phone.getByTestId(id).boundingBox();
        assert.ok(box && box.x >= 0 && box.x + box.width <= 390, `${id} inside the screen: ${JSON.stringify(box)}`);
      }
      await shot(phone, `offline-form-phone-${colorScheme}`);
      // Waiting anyway goes on to the name, as before.
      await phone.getByTestId('wait-anyway').click();
      await phone.getByTestId('name-input').waitFor();
    }
  });
});

test('while waiting, desk_status says nobody is online or closed; the customer keeps their place', async () => {
  const proxy = await startProxy(hub);
  try {
    await withShots('offline-desk-status', async (pages) => {
      const bea = await createAgent(hub, { username: 'bea', display_name: 'Bea', categories: ['billing'] });
      const [agent, customer] = await openPages(browser, pages, [DEFAULT_SIZE, { width: 390, height: 844 }]);
      // Bea is online but away: nobody will answer, so the customer is told first, and waits anyway.
      await agentSignsIn(agent, hub, bea, { available: false });
      await customer.goto(`${proxy.url}/`);
      await customer.getByTestId('category-billing').click();
      await customer.getByTestId('wait-anyway').click();
      await customer.getByTestId('name-input').fill('Dana');
      await customer.getByTestId('join-button').click();
      await customer.getByTestId('place').filter({ hasText: '1' }).waitFor();
      assert.equal(await customer.getByTestId('desk-status').isVisible(), false);

      // Bea goes offline (as the hub would say it): the notice, the place kept.
      proxy.inject({ type: 'desk_status', category: 'billing', open: true, agents_online: false });
      const status = customer.getByTestId('desk-status');
      await status.getByTestId('offline-title').filter({ hasText: 'Nobody is online in Billing right now' }).waitFor();
      assert.equal(await customer.getByTestId('place').textContent(), '1');
      assert.ok(await customer.getByTestId('waiting').isVisible(), 'still in line');
      assert.equal(await status.getByTestId('offline-name').inputValue(), 'Dana', 'the name is filled in');
      // Another category's status changes nothing here.
      proxy.inject({ type: 'desk_status', category: 'sales', open: false, agents_online: false });
      // Closed: said so, and no "Wait anyway" (they are waiting already anyway).
      proxy.inject({ type: 'desk_status', category: 'billing', open: false, agents_online: false });
      await status.getByTestId('offline-title').filter({ hasText: 'Billing is closed now' }).waitFor();
      assert.equal(await status.getByTestId('wait-anyway').count(), 0);
      await shot(customer, 'offline-desk-status-phone');
      // Someone is back: the notice goes; the customer is still number 1.
      proxy.inject({ type: 'desk_status', category: 'billing', open: true, agents_online: true });
      await status.waitFor({ state: 'hidden' });
      assert.equal(await customer.getByTestId('place').textContent(), '1');
      // And away again: this time a message is left, and its confirmation stays.
      proxy.inject({ type: 'desk_status', category: 'billing', agents_online: false });
      await status.getByTestId('offline-email').fill('dana@example.com');
      await status.getByTestId('offline-text').fill('Call me about my invoice.');
      await status.getByTestId('offline-send').click();
      await status.getByTestId('offline-sent').filter({ hasText: 'dana@example.com' }).waitFor();
      // Bea takes the chat: the notice is gone, the chat is on.
      await agent.getByTestId('availability-toggle').click();
      await customer.getByTestId('session-title').filter({ hasText: 'Chatting with Bea' }).waitFor();
      assert.equal(await status.isVisible(), false);
    });
  } finally {
    await proxy.close();
  }
});

test('a category outside its chat hours: told before waiting, and a customer already waiting is told by the hub', async () => {
  await withShots('offline-closed', async (pages) => {
    const token = await adminToken(hub);
    const close = (category) => apiCall(hub, 'PUT', `/api/admin/chat-hours/${category}`, { category, week: {} }, token);
    const cy = await createAgent(hub, { username: 'cyd', display_name: 'Cy', categories: ['general'] });
    const [agent, early, late] = await openPages(browser, pages, [DEFAULT_SIZE, { width: 390, height: 844 }, DEFAULT_SIZE]);
    // Cy is available but busy with another customer: the early one waits in line.
    await agentSignsIn(agent, hub, cy);
    const [first] = await openPages(browser, pages, 1);
    await first.goto(`${hub.url}/`);
    await first.getByTestId('category-general').click();
    await first.getByTestId('name-input').fill('First');
    await first.getByTestId('join-button').click();
    await agent.locator('[data-testid="chat-list-item"][data-customer="First"]').waitFor();
    await early.goto(`${hub.url}/`);
    await early.getByTestId('category-general').click();
    await early.getByTestId('name-input').fill('Early');
    await early.getByTestId('join-button').click();
    await early.getByTestId('place').filter({ hasText: '1' }).waitFor();

    // The admin closes General: the waiting customer is told by the hub and keeps their place.
    assert.equal((await close('general')).status, 200);
    const status = early.getByTestId('desk-status');
    await status.getByTestId('offline-title').filter({ hasText: 'General is closed now' }).waitFor();
    assert.equal(await early.getByTestId('place').textContent(), '1');
    await shot(early, 'offline-closed-while-waiting-phone');

    // A new customer is told before waiting: no "Wait anyway", a message instead.
    await late.goto(`${hub.url}/`);
    await late.getByTestId('category-general').click();
    const notice = late.getByTestId('offline-desk');
    await notice.getByTestId('offline-title').filter({ hasText: 'General is closed now' }).waitFor();
    assert.equal(await notice.getByTestId('wait-anyway').count(), 0);
    await notice.getByTestId('offline-name').fill('Lou');
    await notice.getByTestId('offline-email').fill('lou@example.com');
    await notice.getByTestId('offline-text').fill('When do you open?');
    await notice.getByTestId('offline-send').click();
    await notice.getByTestId('offline-sent').filter({ hasText: 'lou@example.com' }).waitFor();

    // Open again: the early customer is served as soon as Cy is free.
    assert.equal((await apiCall(hub, 'DELETE', '/api/admin/chat-hours/general', undefined, token)).status, 200);
    await status.waitFor({ state: 'hidden' });
    assert.equal(await early.getByTestId('place').textContent(), '1');
  });
});
