// A small agent bot for Switchboard: it answers questions about opening hours and hands
// every other conversation over to people. Run it with a `bot` API token (see
// docs/api-tokens.md) after naming its bot on a category (PUT /api/admin/category-bots/…):
//
//   SWITCHBOARD_URL=ws://127.0.0.1:8080/ws/bot SWITCHBOARD_BOT_TOKEN=sbt_… node examples/faq-bot.mjs
//
// No package needed: Node's own WebSocket (Node 22 or later; Node 20 with
// `node --experimental-websocket`), which may send the Authorization header.
// The frames are in docs/protocol.md ("Bots").

const url = process.env.SWITCHBOARD_URL ?? 'ws://127.0.0.1:8080/ws/bot';
const token = process.env.SWITCHBOARD_BOT_TOKEN;
if (!token) {
  console.error('SWITCHBOARD_BOT_TOKEN is not set: create a token with the `bot` scope');
  process.exit(2);
}

// What it knows: a keyword and its answer. Anything else goes to a person.
const ANSWERS = [
  [/opening hours|open|hours/i, 'We are open Monday to Friday, 9:00 to 17:00.'],
];

function connect() {
  if (typeof WebSocket === 'undefined') {
    console.error('this Node has no WebSocket: use Node 22+, or node --experimental-websocket');
    process.exit(2);
  }
  // Node's WebSocket takes headers as a second argument, as browsers do not.
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` } });
  ws.onopen = () => console.log('connected to', url);
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
  ws.onclose = (event) => {
    console.log('disconnected', event.code, '; connecting again in 2 s');
    setTimeout(connect, 2000);
  };
  ws.onerror = () => console.error('socket error; the close follows');
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
