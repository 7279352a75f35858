// The Node peer for benchmarks/events_fanout.py: a small `ws` broadcast server speaking the
// /api/ws subset loop-server speaks (?channels=a,b filter, {"type":"subscribe"} replaces it,
// the same envelope), driven by the same control protocol as the other servers:
//   "PUB <n>\n"  publish n message.created events on channel "bench", each stamped with the
//                monotonic clock (ns) in data.content, answer nothing;
//   "STATS\n"    answer one JSON line.
// It is written the way a Node server would naturally do it: encode once, ws.send() per client.
"use strict";

const http = require("http");
const net = require("net");
const { WebSocketServer } = require("ws");

const clients = new Map(); // ws -> Set of channel ids, or null for every channel
let seq = 0;
let msgId = 0;

const server = http.createServer((req, res) => {
  res.writeHead(404, { "Content-Type": "text/plain; charset=utf-8" });
  res.end("404 page not found\n");
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
    ws.on("message", (data) => {
      let message;
      try {
        message = JSON.parse(data.toString());
      } catch {
        return;
      }
      if (message && message.type === "subscribe") {
        const channels = Array.isArray(message.channels) ? message.channels : [];
        clients.set(ws, channels.length ? new Set(channels) : null);
      }
    });
    ws.on("close", () => clients.delete(ws));
    ws.on("error", () => clients.delete(ws));
  });
});

function publish(n) {
  for (let i = 0; i < n; i++) {
    seq += 1;
    msgId += 1;
    const envelope = {
      type: "message.created",
      channel_id: "bench",
      data: {
        msg_id: `m-${msgId}`,
        author_id: "bench",
        author_name: "bench",
        content: process.hrtime.bigint().toString(),
        is_bot: true,
      },
      timestamp: Date.now(),
      seq,
    };
    const payload = Buffer.from(JSON.stringify(envelope));
    for (const [ws, channels] of clients) {
      if (channels === null || channels.has("bench")) {
        ws.send(payload, { binary: false });
      }
    }
  }
}

function stats() {
  let buffered = 0;
  let maxBuffered = 0;
  for (const ws of clients.keys()) {
    buffered += ws.bufferedAmount;
    maxBuffered = Math.max(maxBuffered, ws.bufferedAmount);
  }
  const cpu = process.cpuUsage();
  return {
    cpu_s: (cpu.user + cpu.system) / 1e6,
    subscribers: clients.size,
    rss_kb: Math.round(process.memoryUsage().rss / 1024),
    buffered_bytes: buffered,
    max_buffered_bytes: maxBuffered,
    seq,
  };
}

const control = net.createServer((socket) => {
  socket.setNoDelay(true);
  let pending = "";
  socket.on("data", (chunk) => {
    pending += chunk.toString();
    let index;
    while ((index = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, index).trim();
      pending = pending.slice(index + 1);
      if (line.startsWith("PUB ")) {
        publish(Number(line.slice(4)));
      } else if (line === "STATS") {
        socket.write(JSON.stringify(stats()) + "\n");
      }
    }
  });
  socket.on("error", () => {});
});

// Port 0 for both; the benchmark reads the ports from the READY line.
server.listen(0, "127.0.0.1", () => {
  control.listen(0, "127.0.0.1", () => {
    process.stdout.write(`READY ${server.address().port} ${control.address().port}\n`);
  });
});
