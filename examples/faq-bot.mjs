// A small agent bot for Switchboard: it answers questions about opening hours and hands
// every other conversation over to people. Run it with a `bot` API token (see
// docs/api-tokens.md) after naming its bot on a category (PUT /api/admin/category-bots/…):
//
//   SWITCHBOARD_URL=ws://127.0.0.1:8080/ws/bot SWITCHBOARD_BOT_TOKEN=sbt_… node examples/faq-bot.mjs
//
// No package needed: Node's own WebSocket (Node 22 or later; Node 20 with
// `node --experimental-websocket`), which may send the Authorization header.
// The frames are in docs/protocol.md ("Bots").
//
// When it stops and when it keeps trying:
// - the hub unreachable, or the connection lost: it connects again, 1 s later, doubling
//   up to 30 s between tries (back to 1 s once connected);
// - the token refused (401 `invalid_token`, 403 `missing_scope`, or a 4001 close: revoked)
//   or the address not whitelisted (403): it says why and exits 1 — trying again cannot help;
// - closed with 4000 (another copy of this bot connected with the same token and took its
//   place): it says so and exits 0, as docs/protocol.md asks (reconnecting would only push
//   the other copy out in turn).

import http from 'node:http';
import https from 'node:https';
import crypto from 'node:crypto';

const url = process.env.SWITCHBOARD_URL ?? 'ws://127.0.0.1:8080/ws/bot';
const token = process.env.SWITCHBOARD_BOT_TOKEN;
if (!token) {
  console.error('SWITCHBOARD_BOT_TOKEN is not set: create a token with the `bot` scope');
  process.exit(2);
}

// What it knows: whole words and phrases about opening hours, and the answer. Anything
// else ("I can't open my parcel") goes to a person.
const ANSWERS = [
  [/\b(opening hours|opening times|business hours|hours|when are you open|are you open)\b/i,
    'We are open Monday to Friday, 9:00 to 17:00.'],
];

const FIRST_RETRY_MS = 1000;
const LONGEST_RETRY_MS = 30000;
let retryMs = FIRST_RETRY_MS;

function connect() {
  if (typeof WebSocket === 'undefined') {
    console.error('this Node has no WebSocket: use Node 22+, or node --experimental-websocket');
    process.exit(2);
  }
  // Node's WebSocket takes headers as a second argument, as browsers do not.
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` } });
  // Node 20 fires only `error` for a connection that failed to open (no `close`); Node 22
  // fires both. Whichever comes first decides, once.
  let over = false;
  let opened = false;
  const ended = (decide) => {
    if (over) return;
    over = true;
    decide();
  };
  ws.onopen = () => {
    opened = true;
    console.log('connected to', url);
    retryMs = FIRST_RETRY_MS;
  };
  ws.onmessage = (event) => {
    const frame = JSON.parse(String(event.data));
    switch (frame.type) {
      case 'bot_welcome':
        console.log(`welcome, ${frame.bot}: ${frame.conversations.length} conversation(s) held`);
        for (const c of frame.conversations) answerLast(ws, c.chat_id, c.messages);
        break;
      case 'conversation':
        answerLast(ws, frame.chat_id, frame.messages);
        break;
      case 'message':
        if (frame.from === 'customer') answer(ws, frame.chat_id, frame.text);
        break;
      case 'error':
        console.error('refused:', frame.code, frame.message);
        break;
      default:
        break;
    }
  };
  const failed = () => diagnose().then(({ fatal, why }) => {
    if (fatal) {
      console.error(`${why}: stopping`);
      process.exit(1);
    }
    retry(why);
  });
  ws.onclose = (event) => ended(() => {
    if (!opened) return failed();
    if (event.code === 4000) {
      console.error('another copy of this bot connected with the same token and replaced this one (close 4000): stopping');
      process.exit(0);
    }
    if (event.code === 4001) {
      console.error(`the hub closed the connection: ${event.reason || 'the token was revoked'} (close 4001): stopping`);
      process.exit(1);
    }
    retry(`disconnected (close ${event.code}${event.reason ? `: ${event.reason}` : ''})`);
  });
  // An open connection's error is followed by its close, which decides.
  ws.onerror = () => {
    if (!opened) ended(failed);
  };
}

function retry(why) {
  console.error(`${why}; connecting again in ${retryMs / 1000} s`);
  setTimeout(connect, retryMs);
  retryMs = Math.min(retryMs * 2, LONGEST_RETRY_MS);
}

// Why a connection failed: the WebSocket's `error` says nothing, so the same upgrade
// request is made once more by hand, to read the hub's answer (401/403 with its error
// code) or the network's error (the hub down).
function diagnose() {
  return new Promise((resolve) => {
    const target = new URL(url);
    const secure = target.protocol === 'wss:';
    const request = (secure ? https : http).request({
      protocol: secure ? 'https:' : 'http:',
      hostname: target.hostname.replace(/^\[|\]$/g, ''),
      port: target.port || (secure ? 443 : 80),
      path: target.pathname + target.search,
      headers: {
        authorization: `Bearer ${token}`,
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': crypto.randomBytes(16).toString('base64'),
      },
      timeout: 10000,
    });
    request.on('upgrade', (_response, socket) => {
      socket.destroy();
      resolve({ fatal: false, why: 'the connection failed, though the hub accepts the token now' });
    });
    request.on('response', (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => { body = (body + chunk).slice(0, 2000); });
      response.on('end', () => {
        let said = body.trim();
        try {
          const { error } = JSON.parse(body);
          said = `${error.code}: ${error.message}`;
        } catch { /* not the hub's JSON: shown as it came */ }
        const status = response.statusCode;
        // 401/403: the token (bad, revoked, without the `bot` scope or a bot's name) or
        // the address (not in AGENT_WHITELIST); trying again cannot help.
        resolve({ fatal: status === 401 || status === 403, why: `the hub refused the connection: HTTP ${status} ${said}` });
      });
    });
    request.on('timeout', () => request.destroy(new Error('no answer within 10 s')));
    request.on('error', (e) => resolve({ fatal: false, why: `cannot reach the hub at ${url} (${e.code ?? e.message})` }));
    request.end();
  });
}

function answerLast(ws, chatId, messages) {
  const last = messages.filter((m) => m.from === 'customer').at(-1);
  if (last) answer(ws, chatId, last.text);
}

function answer(ws, chatId, text) {
  const known = ANSWERS.find(([pattern]) => pattern.test(text));
  if (known) {
    ws.send(JSON.stringify({ type: 'message', chat_id: chatId, text: known[1] }));
  } else {
    ws.send(JSON.stringify({ type: 'handover', chat_id: chatId, note: `asked: ${text}` }));
  }
}

connect();
