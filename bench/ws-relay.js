// The peer a user might pick instead of Switchboard: a Node `ws` relay that forwards
// each chat message to the other side of its chat and keeps nothing (no ids, no
// timestamps, no archive, no acknowledgement). `make bench` (scenario `peers`) drives it
// with the same load generator as the hub and `loadgen bare-relay`, over the bare
// relay's protocol: a connection's first frame is `hello <side> <chat>[,<chat>...]`
// (side 0 = customer, 1 = agent), answered `{"type":"ready"}`; after that a
// customer's frames belong to its one chat and an agent's name theirs in
// `"chat_id":"…"`, found by a substring search as the bare relay does (no JSON.parse,
// so this is the cheapest Node relay of the kind, not a strawman).
//
//   node bench/ws-relay.js 127.0.0.1:8091
'use strict';
const { WebSocketServer } = require('ws');

const [host, port] = (process.argv[2] || '127.0.0.1:8091').split(':');
const KEY = Buffer.from('"chat_id":"');
const QUOTE = 0x22;
// chat id -> [customer socket, agent socket]
const chats = new Map();

function chatIdOf(frame) {
  const at = frame.indexOf(KEY);
  if (at < 0) return undefined;
  const start = at + KEY.length;
  const end = frame.indexOf(QUOTE, start);
  return end < 0 ? undefined : frame.toString('latin1', start, end);
}

const wss = new WebSocketServer({ host, port: Number(port) });
wss.on('listening', () => console.error(`ws relay listening on ${host}:${port}`));
wss.on('connection', (ws) => {
  let side = -1;
  let mine = [];
  ws.on('message', (frame, isBinary) => {
    if (side < 0) {
      const words = frame.toString().split(' ');
      if (words[0] !== 'hello' || words.length !== 3) return ws.close(1002, 'hello first');
      side = words[1] === '1' ? 1 : 0;
      mine = words[2].split(',');
      for (const chat of mine) {
        if (!chats.has(chat)) chats.set(chat, [undefined, undefined]);
        chats.get(chat)[side] = ws;
      }
      return ws.send('{"type":"ready"}');
    }
    const pair = chats.get(side === 0 ? mine[0] : chatIdOf(frame));
    const peer = pair && pair[1 - side];
    if (peer) peer.send(frame, { binary: isBinary });
  });
  ws.on('close', () => {
    for (const chat of mine) {
      const pair = chats.get(chat);
      if (pair && pair[side] === ws) pair[side] = undefined;
      if (pair && !pair[0] && !pair[1]) chats.delete(chat);
    }
  });
});
