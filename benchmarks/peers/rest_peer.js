// The Node peers for benchmarks/events_user_path.py: REST writes delivered to /api/ws
// subscribers, the way a Node server on the claudecodeui stack (http + ws + better-sqlite3)
// would do it. Two modes:
//   node rest_peer.js                 transport only: a write is broadcast, nothing is stored;
//   node rest_peer.js --persist FILE  each write is one SQLite transaction (WAL,
//                                     synchronous=FULL) before the broadcast, as loop-server's
//                                     store does.
// Routes (the subset of loop-server's API the benchmark uses, same bodies and statuses):
//   POST /api/channels/create {"name"}                 -> 201 {"channel_id"}
//   POST /api/messages {"channel_id","content"}        -> 204, message.created (the user's)
//   POST /api/commands {"channel_id","command"}        -> 204, message.created (a bot reply)
//   GET  /api/ws?channels=a,b                          -> the events WebSocket, same envelope
// Prints "READY <port>" once listening.
"use strict";

const http = require("http");
const { WebSocketServer } = require("ws");

const persistAt = process.argv.indexOf("--persist");
let db = null;
let insertMessage = null;
let insertChannel = null;
if (persistAt >= 0) {
  const Database = require("better-sqlite3");
  db = new Database(process.argv[persistAt + 1]);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = FULL");
  db.exec(`CREATE TABLE IF NOT EXISTS channels (id TEXT PRIMARY KEY, name TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS messages (
      id INTEGER PRIMARY KEY AUTOINCREMENT, channel_id TEXT NOT NULL, msg_id TEXT NOT NULL,
      author_id TEXT NOT NULL, author_name TEXT NOT NULL, content TEXT NOT NULL,
      is_bot INTEGER NOT NULL, created_at TEXT NOT NULL)`);
  const message = db.prepare(
    `INSERT INTO messages (channel_id, msg_id, author_id, author_name, content, is_bot, created_at)
     VALUES (?, ?, ?, ?, ?, ?, ?)`,
  );
  // One transaction per write, committed (and fsynced) before the answer.
  insertMessage = db.transaction((row) =>
    message.run(row.channel_id, row.msg_id, row.author_id, row.author_name, row.content,
      row.is_bot ? 1 : 0, row.created_at),
  );
  const channel = db.prepare("INSERT INTO channels (id, name) VALUES (?, ?)");
  insertChannel = db.transaction((id, name) => channel.run(id, name));
}

const clients = new Map(); // ws -> Set of channel ids, or null for every channel
let seq = 0;
let ids = 0;

function broadcast(channelId, data) {
  seq += 1;
  const frame = JSON.stringify({
    type: "message.created",
    channel_id: channelId,
    data,
    timestamp: Date.now(),
    seq,
  });
  for (const [ws, filter] of clients) {
    if (filter === null || filter.has(channelId)) ws.send(frame);
  }
}

function store(channelId, authorId, content, isBot) {
  ids += 1;
  const row = {
    channel_id: channelId,
    msg_id: `m-${ids}`,
    author_id: authorId,
    author_name: authorId,
    content,
    is_bot: isBot,
    created_at: new Date().toISOString(),
  };
  if (insertMessage !== null) insertMessage(row);
  return row;
}

function answer(res, status, body) {
  if (body === undefined) {
    res.writeHead(status);
    res.end();
    return;
  }
  const payload = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": payload.length });
  res.end(payload);
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", () => {
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString() || "{}");
    } catch {
      answer(res, 400, { error: "invalid JSON" });
      return;
    }
    if (req.method !== "POST") {
      answer(res, 404, { error: "not found" });
    } else if (req.url === "/api/channels/create") {
      ids += 1;
      const id = `ch-${ids}`;
      if (insertChannel !== null) insertChannel(id, body.name || id);
      answer(res, 201, { channel_id: id });
    } else if (req.url === "/api/messages") {
      const row = store(body.channel_id, "local-user", body.content, false);
      broadcast(row.channel_id, {
        msg_id: row.msg_id, author_id: row.author_id, author_name: row.author_name,
        content: row.content, is_bot: false,
      });
      answer(res, 204);
    } else if (req.url === "/api/commands") {
      const row = store(body.channel_id, "loop", "No scheduled tasks.", true);
      broadcast(row.channel_id, {
        msg_id: row.msg_id, author_id: row.author_id, author_name: row.author_name,
        content: row.content, is_bot: true,
      });
      answer(res, 204);
    } else {
      answer(res, 404, { error: "not found" });
    }
  });
});

const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 1 << 20 });
server.on("upgrade", (req, socket, head) => {
  const url = new URL(req.url, "http://localhost");
  if (url.pathname !== "/api/ws") {
    socket.destroy();
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    const raw = url.searchParams.get("channels") || "";
    clients.set(ws, raw ? new Set(raw.split(",")) : null);
    ws.on("close", () => clients.delete(ws));
    ws.on("error", () => clients.delete(ws));
  });
});

server.keepAliveTimeout = 60000;
server.listen(0, "127.0.0.1", () => {
  console.log(`READY ${server.address().port}`);
});
process.on("SIGTERM", () => {
  if (db !== null) db.close();
  process.exit(0);
});
