// The example bot (examples/faq-bot.mjs, run with Node's --experimental-websocket as its
// header says) against a stand-in hub on loopback, no browser needed: started while the
// hub is down, it says it cannot reach it and tries again until the hub is up; it hands
// "I can't open my parcel" over and answers "opening hours"; closed with 4000 (another
// copy took its place) it says so and stops (exit 0) rather than push the other copy out.
// A hub that refuses its token (401) gets it to say why and exit 1, not loop.
// (The real hub runs it in the hub test bots::the_example_bot_answers_its_keyword_and_hands_over_otherwise.)

import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import crypto from 'node:crypto';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const SCRIPT = fileURLToPath(new URL('../../examples/faq-bot.mjs', import.meta.url));
// Each test's bound, scaled as the pages' waits are (BROWSER_WAIT_SCALE, helpers.mjs `waitMs`).
const TEST_TIMEOUT = 60_000 * Number(process.env.BROWSER_WAIT_SCALE || 1);
const TOKEN = `sbt_${'A'.repeat(43)}`;

/** A loopback port nothing listens on (for now). */
async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The bot's process: what it printed, a wait for a line, its exit code. */
function startBot(port, t) {
  const child = spawn(process.execPath, ['--experimental-websocket', SCRIPT], {
    env: { ...process.env, SWITCHBOARD_URL: `ws://127.0.0.1:${port}/ws/bot`, SWITCHBOARD_BOT_TOKEN: TOKEN },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => child.kill());
  let out = '';
  const waiting = new Set();
  const feed = (chunk) => {
    out += chunk;
    for (const check of waiting) check();
  };
  child.stdout.setEncoding('utf8').on('data', feed);
  child.stderr.setEncoding('utf8').on('data', feed);
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  const said = (pattern) => new Promise((resolve) => {
    const check = () => {
      if (pattern.test(out)) {
        waiting.delete(check);
        resolve(out);
      }
    };
    waiting.add(check);
    check();
  });
  return { said, exited, output: () => out };
}

/** A stand-in hub: every websocket upgrade request goes to `onUpgrade`. */
async function standIn(port, onUpgrade, t) {
  const server = http.createServer((_req, res) => res.writeHead(404).end());
  server.on('upgrade', onUpgrade);
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  t.after(() => server.close());
  return server;
}

function accept(req, socket) {
  const key = crypto
    .createHash('sha1')
    .update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
    .digest('base64');
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${key}\r\n\r\n`);
}

/** A server's frame (unmasked). */
function frame(opcode, payload) {
  const header = payload.length < 126
    ? [0x80 | opcode, payload.length]
    : [0x80 | opcode, 126, payload.length >> 8, payload.length & 255];
  return Buffer.concat([Buffer.from(header), payload]);
}
const textFrame = (value) => frame(1, Buffer.from(JSON.stringify(value)));
function closeFrame(code) {
  const payload = Buffer.alloc(2);
  payload.writeUInt16BE(code);
  return frame(8, payload);
}

/** Calls `onText` with each JSON text frame the client sends (masked, under 64 KiB); ends
 * the connection when the client answers a close. */
function readFrames(socket, onText) {
  let buffer = Buffer.alloc(0);
  socket.on('data', (data) => {
    buffer = Buffer.concat([buffer, data]);
    for (;;) {
      if (buffer.length < 2) return;
      const opcode = buffer[0] & 15;
      let length = buffer[1] & 127;
      let at = 2;
      if (length === 126) {
        if (buffer.length < 4) return;
        length = buffer.readUInt16BE(2);
        at = 4;
      }
      const mask = buffer.subarray(at, at + 4);
      at += 4;
      if (buffer.length < at + length) return;
      const payload = Buffer.from(buffer.subarray(at, at + length));
      for (let i = 0; i < length; i++) payload[i] ^= mask[i % 4];
      buffer = buffer.subarray(at + length);
      if (opcode === 1) onText(JSON.parse(payload.toString()));
      // The client's answer to a close: the server ends the connection, as a hub does.
      if (opcode === 8) socket.end();
    }
  });
  socket.on('error', () => {});
}

test('started while the hub is down it keeps trying, answers its keyword, hands over the rest and stops on 4000', { timeout: TEST_TIMEOUT }, async (t) => {
  const port = await freePort();
  const bot = startBot(port, t);
  await bot.said(/cannot reach the hub.*connecting again in/);

  const sent = [];
  let done;
  const answered = new Promise((resolve) => { done = resolve; });
  await standIn(port, (req, socket) => {
    accept(req, socket);
    socket.write(textFrame({
      type: 'bot_welcome',
      bot: 'Faq',
      conversations: [{ chat_id: 'c1', messages: [{ from: 'customer', text: "I can't open my parcel" }] }],
    }));
    readFrames(socket, (f) => {
      sent.push(f);
      if (f.type === 'handover' && f.chat_id === 'c1') {
        socket.write(textFrame({
          type: 'conversation',
          chat_id: 'c2',
          messages: [{ from: 'customer', text: 'What are your opening hours?' }],
        }));
      }
      if (f.type === 'message' && f.chat_id === 'c2') {
        socket.write(closeFrame(4000));
        done();
      }
    });
  }, t);
  await answered;
  assert.equal(await bot.exited, 0, bot.output());
  assert.match(bot.output(), /welcome, Faq/);
  assert.match(bot.output(), /replaced this one \(close 4000\): stopping/);
  const handover = sent.find((f) => f.type === 'handover');
  assert.equal(handover.chat_id, 'c1', JSON.stringify(sent));
  const answer = sent.find((f) => f.type === 'message');
  assert.match(answer.text, /9:00/, JSON.stringify(sent));
});

test('a refused token (401) makes it say why and exit 1 instead of trying forever', { timeout: TEST_TIMEOUT }, async (t) => {
  const port = await freePort();
  let tries = 0;
  await standIn(port, (_req, socket) => {
    tries += 1;
    const body = JSON.stringify({ error: { code: 'invalid_token', message: 'this API token was revoked' } });
    socket.end(`HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`);
  }, t);
  const bot = startBot(port, t);
  assert.equal(await bot.exited, 1, bot.output());
  assert.match(bot.output(), /HTTP 401 invalid_token: this API token was revoked: stopping/);
  assert.ok(tries <= 2, `it asked ${tries} times (its connection and the look at why)`);
});
