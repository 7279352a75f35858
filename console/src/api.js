// REST and WebSocket addresses, relative to the page so the console works behind a reverse
// proxy that serves it under a sub-path (/loop/ → api/... resolves to /loop/api/...).
import { token } from "./auth.js";

export class ApiError extends Error {
  constructor(status, text) {
    super(text || `HTTP ${status}`);
    this.status = status;
  }
}

export async function request(method, path, body) {
  const headers = {};
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  const init = { method, headers, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, "server unreachable");
  }
  const text = await response.text();
  if (!response.ok) throw new ApiError(response.status, text.trim());
  const type = response.headers.get("content-type") || "";
  return type.includes("json") && text ? JSON.parse(text) : text;
}

export const api = {
  channels: (query = "") =>
    request("GET", `api/channels${query ? `?query=${encodeURIComponent(query)}` : ""}`),
  createChannel: (name) => request("POST", "api/channels/create", { name }),
  ensureChannel: (dirPath) => request("POST", "api/channels", { dir_path: dirPath }),
  deleteChannel: (id) => request("DELETE", `api/channels/${encodeURIComponent(id)}`),
  messages: (id, cursor) =>
    request(
      "GET",
      `api/channels/${encodeURIComponent(id)}/messages?limit=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`
    ),
  send: (channelId, content) => request("POST", "api/messages", { channel_id: channelId, content }),
  command: (channelId, command) => request("POST", "api/commands", { channel_id: channelId, command }),
  createThread: (channelId, name, message) =>
    request("POST", "api/threads", { channel_id: channelId, name, ...(message ? { message } : {}) }),
  deleteThread: (id) => request("DELETE", `api/threads/${encodeURIComponent(id)}`),
  tasks: (channelId) => request("GET", `api/tasks?channel_id=${encodeURIComponent(channelId)}`),
  createTask: (task) => request("POST", "api/tasks", task),
  updateTask: (id, fields) => request("PATCH", `api/tasks/${id}`, fields),
  deleteTask: (id) => request("DELETE", `api/tasks/${id}`),
  runTask: (id) => request("POST", `api/tasks/${id}/run`),
  taskRuns: (id) => request("GET", `api/tasks/${id}/runs?limit=20`),
  searchMemory: (channelId, query, topK) =>
    request("POST", "api/memory/search", { channel_id: channelId, query, top_k: topK }),
  indexMemory: (channelId) => request("POST", "api/memory/index", { channel_id: channelId }),
};

// A ws:// or wss:// address for an API socket; browsers cannot set headers on a WebSocket,
// so the token travels as ?token= (the server accepts it on WebSocket upgrades only).
export function socketUrl(path, params = {}) {
  const url = new URL(path, document.baseURI);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, String(value));
  }
  const t = token();
  if (t) url.searchParams.set("token", t);
  return url.toString();
}
