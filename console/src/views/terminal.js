// Terminals in the channel's container: several tabs, each its own /api/ws/terminal socket
// and xterm.js screen. A tab remembers its session id for this browser tab (sessionStorage),
// so a reload, or coming back to the channel, re-attaches and the server replays the recent
// output. Closing a tab detaches: the session lives on until the server reaps it when idle.
import { FitAddon } from "@xterm/addon-fit";
import { Terminal } from "@xterm/xterm";
import { socketUrl } from "../api.js";
import { clear, h, toast } from "../dom.js";

// The shell: bash where the image has it, else sh.
const SHELL = ["/bin/sh", "-c", "if command -v bash >/dev/null 2>&1; then exec bash; else exec sh; fi"];

const DARK = { background: "#0f1117", foreground: "#e6e6e6", cursor: "#a5b4fc", selectionBackground: "#3b3f57" };
const LIGHT = { background: "#fbfbfd", foreground: "#1f2330", cursor: "#4f46e5", selectionBackground: "#c7d2fe" };
const darkQuery = matchMedia("(prefers-color-scheme: dark)");

function toBase64(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

let nextTabNumber = 1;

class TerminalTab {
  constructor(view, saved) {
    this.view = view;
    this.key = saved.key || `t${Date.now().toString(36)}${nextTabNumber}`;
    this.mode = saved.mode;
    this.title = saved.title || (this.mode === "claude" ? `Claude ${nextTabNumber}` : `Shell ${nextTabNumber}`);
    nextTabNumber += 1;
    this.sessionId = saved.sessionId || "";
    this.state = "idle";
    this.screen = h("div", { class: "xterm-host", role: "region", "aria-label": `Terminal ${this.title}` });
    this.term = new Terminal({
      cursorBlink: true,
      fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace",
      fontSize: 13,
      scrollback: 5000,
      theme: darkQuery.matches ? DARK : LIGHT,
    });
    this.fit = new FitAddon();
    this.term.loadAddon(this.fit);
    this.term.onData((data) => this.send({ type: "input", data: toBase64(data) }));
    this.term.onResize(({ rows, cols }) => {
      if (this.state === "live") this.send({ type: "resize", rows, cols });
    });
    this.opened = false;
  }

  saved() {
    return { key: this.key, mode: this.mode, title: this.title, sessionId: this.sessionId };
  }

  show() {
    if (!this.opened) {
      this.term.open(this.screen);
      this.opened = true;
    }
    this.refit();
    this.term.focus();
    if (!this.socket && this.state !== "ended") this.connect();
  }

  refit() {
    if (!this.opened || !this.screen.isConnected || !this.screen.clientWidth) return;
    try {
      this.fit.fit();
    } catch {
      // not laid out yet
    }
  }

  connect() {
    const socket = new WebSocket(socketUrl("api/ws/terminal"));
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    this.setState("connecting");
    socket.onopen = () => {
      if (this.sessionId) {
        this.attaching = true;
        this.send({ type: "attach", session_id: this.sessionId });
      } else {
        this.term.reset();
        this.send({
          type: "create",
          channel_id: this.view.channel.channel_id,
          cmd: this.mode === "claude" ? [] : SHELL,
          rows: this.term.rows,
          cols: this.term.cols,
        });
      }
    };
    socket.onmessage = (message) => {
      if (typeof message.data !== "string") {
        this.term.write(new Uint8Array(message.data));
        return;
      }
      let status;
      try {
        status = JSON.parse(message.data);
      } catch {
        return;
      }
      this.onStatus(status);
    };
    socket.onclose = () => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (this.state !== "ended") this.setState("detached");
    };
  }

  onStatus(status) {
    switch (status.type) {
      case "created":
      case "attached":
        if (status.type === "attached") this.term.reset(); // the history follows
        this.sessionId = status.session_id;
        this.attaching = false;
        this.setState("live");
        this.view.save();
        this.refit();
        this.send({ type: "resize", rows: this.term.rows, cols: this.term.cols });
        break;
      case "closed":
        if (this.state === "live") {
          this.term.write("\r\n\x1b[2m[session ended]\x1b[0m\r\n");
          this.setState("ended");
        }
        break;
      case "stopped":
        this.setState("ended");
        break;
      case "error":
        if (this.attaching) {
          // The session is gone (stopped, reaped, or the server restarted).
          this.attaching = false;
          this.term.write(`\x1b[31m${status.message}\x1b[0m\r\n`);
          this.setState("ended");
          this.socket?.close();
        } else if (this.state === "connecting") {
          this.term.write(`\x1b[31mCould not start: ${status.message}\x1b[0m\r\n`);
          this.setState("ended");
          this.socket?.close();
        } else {
          toast(`Terminal: ${status.message}`, "error");
        }
        break;
      default:
        break;
    }
  }

  send(message) {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  setState(state) {
    this.state = state;
    this.view.renderTabs();
  }

  restart() {
    this.sessionId = "";
    this.state = "idle";
    this.view.save();
    this.socket?.close();
    this.socket = null;
    this.connect();
  }

  detach() {
    const socket = this.socket;
    this.socket = null;
    socket?.close();
    if (this.state !== "ended") this.state = "detached";
  }

  stop() {
    this.send({ type: "stop" });
  }

  dispose() {
    this.detach();
    this.term.dispose();
  }
}

export class TerminalView {
  constructor() {
    this.channel = null;
    this.tabs = [];
    this.current = null;
    this.tabBar = h("div", { class: "term-tabs", role: "tablist", "aria-label": "Terminal sessions" });
    this.status = h("span", { class: "term-status", role: "status" });
    this.actions = h("div", { class: "term-actions" });
    this.stage = h("div", { class: "term-stage" });
    this.element = h(
      "div",
      { class: "terminal-view" },
      h(
        "div",
        { class: "term-toolbar" },
        this.tabBar,
        h(
          "div",
          { class: "term-new" },
          h("button", { class: "small", onclick: () => this.open("shell") }, "+ Shell"),
          h("button", { class: "small", onclick: () => this.open("claude") }, "+ Claude")
        )
      ),
      h("div", { class: "term-bar" }, this.status, this.actions),
      this.stage
    );
    this.resizer = new ResizeObserver(() => this.current?.refit());
    this.resizer.observe(this.stage);
    darkQuery.addEventListener("change", () => {
      for (const tab of this.tabs) tab.term.options.theme = darkQuery.matches ? DARK : LIGHT;
    });
  }

  storageKey() {
    return `loop.terminals.${this.channel.channel_id}`;
  }

  save() {
    if (!this.channel) return;
    sessionStorage.setItem(this.storageKey(), JSON.stringify(this.tabs.map((t) => t.saved())));
  }

  mount(channel) {
    if (this.channel?.channel_id === channel.channel_id) {
      this.current?.show();
      return;
    }
    this.unmountAll();
    this.channel = channel;
    let saved = [];
    try {
      saved = JSON.parse(sessionStorage.getItem(this.storageKey()) || "[]");
    } catch {
      saved = [];
    }
    this.tabs = saved.map((s) => new TerminalTab(this, s));
    this.select(this.tabs[0] || null);
  }

  // Leaving the view keeps the sessions attached; leaving the channel detaches them.
  unmount() {}

  unmountAll() {
    for (const tab of this.tabs) tab.dispose();
    this.tabs = [];
    this.current = null;
    this.stage.replaceChildren();
    this.channel = null;
  }

  open(mode) {
    const tab = new TerminalTab(this, { mode });
    this.tabs.push(tab);
    this.save();
    this.select(tab);
  }

  select(tab) {
    this.current = tab;
    clear(this.stage, tab ? tab.screen : h("p", { class: "empty" }, "No terminal open. Start a shell or an interactive Claude in this channel's container."));
    this.renderTabs();
    tab?.show();
  }

  close(tab) {
    tab.dispose();
    this.tabs = this.tabs.filter((t) => t !== tab);
    this.save();
    if (this.current === tab) this.select(this.tabs.at(-1) || null);
    else this.renderTabs();
  }

  renderTabs() {
    clear(
      this.tabBar,
      this.tabs.map((tab) =>
        h(
          "div",
          { class: `term-tab${tab === this.current ? " current" : ""}` },
          h(
            "button",
            {
              role: "tab",
              "aria-selected": String(tab === this.current),
              class: `term-tab-button state-${tab.state}`,
              onclick: () => this.select(tab),
            },
            h("span", { class: "dot", "aria-hidden": "true" }),
            tab.title
          ),
          h("button", { class: "icon", "aria-label": `Close ${tab.title} (detach)`, title: "Close tab (the session keeps running until idle)", onclick: () => this.close(tab) }, "×")
        )
      )
    );
    const tab = this.current;
    const words = { idle: "", connecting: "connecting…", live: "attached", detached: "detached", ended: "session ended" };
    this.status.textContent = tab ? `${tab.title}: ${words[tab.state]}` : "";
    clear(
      this.actions,
      tab && tab.state === "live" ? h("button", { class: "small", onclick: () => { tab.detach(); this.renderTabs(); } }, "Detach") : null,
      tab && tab.state === "detached" ? h("button", { class: "small primary", onclick: () => tab.connect() }, "Re-attach") : null,
      tab && tab.state === "ended" ? h("button", { class: "small primary", onclick: () => tab.restart() }, "New session") : null,
      tab && tab.state === "live"
        ? h(
            "button",
            {
              class: "small danger",
              title: "Ends this session and removes the channel's shell container (every terminal of the channel)",
              onclick: () => {
                if (confirm("Stop this session and remove the channel's shell container? Other terminals of this channel end too.")) tab.stop();
              },
            },
            "Stop"
          )
        : null
    );
  }

  onEvent() {}
}
