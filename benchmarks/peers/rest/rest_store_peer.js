// The persisting Node peer for benchmarks/rest.py: the REST routes the benchmark drives, served
// the way a Node server on the claudecodeui stack would (node:http + better-sqlite3, WAL,
// synchronous=FULL, each write its own transaction committed before the answer).
//   node rest_store_peer.js FILE      (FILE: the SQLite database; prints "READY <port>")
// Routes, with loop-server's bodies and statuses:
//   GET  /api/health                                 -> 200 {"status":"ok"}
//   POST /api/channels/create {"name"}               -> 201 {"channel_id"}
//   GET  /api/channels                               -> 200 [channel items], ordered by name
//   GET  /api/channels/<id>/messages?limit=N         -> 200 {"messages","next_cursor"}
//   POST /api/messages {"channel_id","content"}      -> 204 (stored)
//   POST /api/commands {"channel_id","command"}      -> 204 (lists the tasks, stores a reply)
//   POST /api/tasks {"channel_id","schedule","type","prompt"} -> 201 {"id"}
//   GET  /api/tasks/<id>                             -> 200 task | 404
"use strict";

const http = require("http");
const Database = require("better-sqlite3");

const db = new Database(process.argv[2]);
db.pragma("journal_mode = WAL");
db.pragma("synchronous = FULL");
db.exec(`
  CREATE TABLE IF NOT EXISTS channels (id INTEGER PRIMARY KEY, channel_id TEXT UNIQUE NOT NULL,
    name TEXT NOT NULL, dir_path TEXT NOT NULL DEFAULT '', parent_id TEXT NOT NULL DEFAULT '',
    active INTEGER NOT NULL DEFAULT 1);
  CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel_id TEXT NOT NULL, msg_id TEXT NOT NULL UNIQUE, author_id TEXT NOT NULL,
    author_name TEXT NOT NULL, content TEXT NOT NULL, is_bot INTEGER NOT NULL,
    created_at TEXT NOT NULL);
  CREATE INDEX IF NOT EXISTS messages_channel_id_id ON messages (channel_id, id);
  CREATE TABLE IF NOT EXISTS tasks (id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel_id TEXT NOT NULL, schedule TEXT NOT NULL, type TEXT NOT NULL, prompt TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1, created_at TEXT NOT NULL);`);

const q = {
  addChannel: db.prepare("INSERT INTO channels (channel_id, name) VALUES (?, ?)"),
  channels: db.prepare("SELECT * FROM channels ORDER BY name, id"),
  addMessage: db.prepare(`INSERT INTO messages
    (channel_id, msg_id, author_id, author_name, content, is_bot, created_at)
    VALUES (?, ?, ?, ?, ?, ?, ?)`),
  page: db.prepare(
    "SELECT * FROM messages WHERE channel_id = ? ORDER BY id DESC LIMIT ?"),
  addTask: db.prepare(`INSERT INTO tasks (channel_id, schedule, type, prompt, created_at)
    VALUES (?, ?, ?, ?, ?)`),
  task: db.prepare("SELECT * FROM tasks WHERE id = ?"),
  tasksOf: db.prepare("SELECT * FROM tasks WHERE channel_id = ? ORDER BY id"),
};
// better-sqlite3 runs a lone statement in its own (auto-commit) transaction; wrapping each
// write in db.transaction makes that explicit: one write, one COMMIT, one fsync.
const addChannel = db.transaction((id, name) => q.addChannel.run(id, name));
const addMessage = db.transaction((r) =>
  q.addMessage.run(r.channel_id, r.msg_id, r.author_id, r.author_name, r.content, r.is_bot,
    r.created_at));
const addTask = db.transaction((t) =>
  q.addTask.run(t.channel_id, t.schedule, t.type, t.prompt, new Date().toISOString()).lastInsertRowid);

let ids = 0;

function store(channelId, authorId, content, isBot) {
  ids += 1;
  addMessage({ channel_id: channelId, msg_id: `m-${process.pid}-${ids}`, author_id: authorId,
    author_name: authorId, content, is_bot: isBot ? 1 : 0, created_at: new Date().toISOString() });
}

function answer(res, status, body) {
  if (body === undefined) {
    res.writeHead(status);
    res.end();
    return;
  }
  const payload = Buffer.from(JSON.stringify(body) + "\n");
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": payload.length });
  res.end(payload);
}

function route(req, res, body) {
  const url = new URL(req.url, "http://localhost");
  const path = url.pathname;
  if (req.method === "GET" && path === "/api/health") return answer(res, 200, { status: "ok" });
  if (req.method === "GET" && path === "/api/channels") {
    return answer(res, 200, q.channels.all().map((c) => ({
      channel_id: c.channel_id, name: c.name, dir_path: c.dir_path, parent_id: c.parent_id,
      active: c.active === 1, container_running: false, agent_running: false })));
  }
  let m = path.match(/^\/api\/channels\/([^/]+)\/messages$/);
  if (req.method === "GET" && m) {
    const limit = Number(url.searchParams.get("limit") || 50);
    const rows = q.page.all(m[1], limit + 1);
    const page = rows.slice(0, limit).map((r) => ({ id: r.id, msg_id: r.msg_id,
      author_id: r.author_id, author_name: r.author_name, content: r.content,
      is_bot: r.is_bot === 1, created_at: r.created_at }));
    const next = rows.length > limit ? page[page.length - 1].id : null;
    return answer(res, 200, { messages: page, next_cursor: next });
  }
  m = path.match(/^\/api\/tasks\/(\d+)$/);
  if (req.method === "GET" && m) {
    const task = q.task.get(Number(m[1]));
    return task ? answer(res, 200, task) : answer(res, 404, { error: "task not found" });
  }
  if (req.method !== "POST") return answer(res, 404, { error: "not found" });
  if (path === "/api/channels/create") {
    ids += 1;
    const id = `ch-${process.pid}-${ids}`;
    addChannel(id, body.name || id);
    return answer(res, 201, { channel_id: id });
  }
  if (path === "/api/messages") {
    store(body.channel_id, "local-user", body.content, false);
    return answer(res, 204);
  }
  if (path === "/api/commands") {
    const tasks = q.tasksOf.all(body.channel_id);
    const reply = tasks.length
      ? tasks.map((t) => `#${t.id} ${t.type} ${t.schedule}: ${t.prompt}`).join("\n")
      : "No scheduled tasks.";
    store(body.channel_id, "loop", reply, true);
    return answer(res, 204);
  }
  if (path === "/api/tasks") return answer(res, 201, { id: Number(addTask(body)) });
  return answer(res, 404, { error: "not found" });
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", () => {
    let body = {};
    try {
      if (chunks.length) body = JSON.parse(Buffer.concat(chunks).toString());
    } catch {
      return answer(res, 400, { error: "invalid JSON" });
    }
    route(req, res, body);
  });
});
server.keepAliveTimeout = 60000;
server.listen(0, "127.0.0.1", () => console.log(`READY ${server.address().port}`));
process.on("SIGTERM", () => server.close(() => { db.close(); process.exit(0); }));
