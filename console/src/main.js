// The console's shell: the header with the live-connection state, the channel list, and the
// channel's views (chat, tasks, memory, terminal). The selected channel and view live in the
// URL fragment (#c=<id>&v=<view>) so a reload comes back to the same place.
import "@xterm/xterm/css/xterm.css";
import "./style.css";
import { api, ApiError } from "./api.js";
import { captureToken, setToken, token } from "./auth.js";
import { clear, h, toast } from "./dom.js";
import { EventStream } from "./events.js";
import { ChannelsView } from "./views/channels.js";
import { ChatView } from "./views/chat.js";
import { MemoryView } from "./views/memory.js";
import { TasksView } from "./views/tasks.js";
import { TerminalView } from "./views/terminal.js";

const VIEWS = [
  ["chat", "Chat"],
  ["tasks", "Tasks"],
  ["memory", "Memory"],
  ["terminal", "Terminal"],
];

function readRoute() {
  const params = new URLSearchParams(location.hash.replace(/^#/, ""));
  return { channel: params.get("c") || "", view: params.get("v") || "chat" };
}

function writeRoute(channel, view) {
  const params = new URLSearchParams();
  if (channel) params.set("c", channel);
  if (view && view !== "chat") params.set("v", view);
  history.replaceState(null, "", `${location.pathname}${location.search}#${params}`);
}

class Console {
  constructor(root) {
    this.root = root;
    this.events = new EventStream();
    this.route = readRoute();
    this.views = {
      chat: new ChatView({ onThreadCreated: (id) => this.afterThreadCreated(id) }),
      tasks: new TasksView(),
      memory: new MemoryView(),
      terminal: new TerminalView(),
    };
    this.channels = new ChannelsView({
      onSelect: (id) => this.selectChannel(id),
      onDeleted: (id) => {
        if (id === this.route.channel) this.selectChannel("");
      },
    });
    this.connection = h("span", { class: "connection", role: "status", "aria-live": "polite" });
    this.offline = h(
      "div",
      { class: "offline-banner", hidden: true, role: "alert" },
      "Connection to the server lost. Reconnecting… what happens meanwhile is caught up when it is back."
    );
    this.menuButton = h(
      "button",
      {
        class: "icon menu",
        "aria-label": "Show channels",
        "aria-expanded": "false",
        "aria-controls": "sidebar",
        onclick: () => this.toggleSidebar(),
      },
      "☰"
    );
    this.sidebar = h("nav", { id: "sidebar", class: "sidebar", "aria-label": "Channels" }, this.channels.element);
    this.heading = h("div", { class: "channel-heading" });
    this.tabs = h("div", { class: "view-tabs", role: "tablist", "aria-label": "Channel views" });
    this.panel = h("section", { class: "panel", role: "tabpanel", id: "view-panel" });
    this.main = h("main", { id: "main", class: "main", tabindex: "-1" }, this.heading, this.tabs, this.panel);
    clear(
      root,
      h(
        "header",
        { class: "topbar" },
        this.menuButton,
        h("h1", { class: "brand" }, h("img", { src: "console/favicon.svg", alt: "", width: 22, height: 22 }), "Loop"),
        this.connection
      ),
      this.offline,
      h("div", { class: "layout" }, this.sidebar, this.main)
    );
    this.events.onState((state) => this.showConnection(state));
    this.events.on((event) => this.dispatch(event));
  }

  async start() {
    this.events.start();
    await this.channels.refresh();
    this.selectChannel(this.route.channel, this.route.view);
  }

  showConnection(state) {
    const words = {
      connecting: "connecting…",
      live: "live",
      reconnecting: "disconnected — reconnecting…",
    };
    this.connection.textContent = words[state] || state;
    this.connection.className = `connection state-${state}`;
    this.offline.hidden = state !== "reconnecting";
    if (state === "live" && this.wasDown) {
      this.wasDown = false;
      this.channels.refresh();
    }
    if (state === "reconnecting") this.wasDown = true;
  }

  dispatch(event) {
    if (event.type === "resync") {
      this.resync();
      return;
    }
    this.channels.onEvent(event);
    for (const view of Object.values(this.views)) view.onEvent(event);
  }

  async resync() {
    await this.channels.refresh();
    const channel = this.channels.find(this.route.channel);
    if (!channel) return;
    this.views.chat.resync(channel);
    this.views.tasks.refresh();
  }

  toggleSidebar(open = !this.root.classList.contains("sidebar-open")) {
    this.root.classList.toggle("sidebar-open", open);
    this.menuButton.setAttribute("aria-expanded", String(open));
  }

  selectChannel(id, view = this.route.view) {
    const channel = id ? this.channels.find(id) : null;
    this.toggleSidebar(false);
    if (this.current && this.current !== this.views[view]) this.current.unmount();
    this.route = { channel: channel ? id : "", view: VIEWS.some(([v]) => v === view) ? view : "chat" };
    writeRoute(this.route.channel, this.route.view);
    this.channels.select(this.route.channel);
    if (!channel) {
      this.current = null;
      this.views.terminal.unmountAll();
      clear(this.heading);
      clear(this.tabs);
      clear(
        this.panel,
        h(
          "div",
          { class: "welcome" },
          h("h2", {}, "Welcome to Loop"),
          h("p", {}, "Pick a channel, or create one by name or by project directory. Each channel runs Claude Code in its own container."),
          h("button", { class: "primary", onclick: () => { this.toggleSidebar(true); this.channels.nameInput.focus(); } }, "Create a channel")
        )
      );
      return;
    }
    if (this.views.terminal.channel && this.views.terminal.channel.channel_id !== id) this.views.terminal.unmountAll();
    this.renderHeading(channel);
    this.renderTabs();
    const current = this.views[this.route.view];
    this.current = current;
    clear(this.panel, current.element);
    this.panel.setAttribute("aria-labelledby", `tab-${this.route.view}`);
    current.mount(channel);
  }

  renderHeading(channel) {
    const parent = channel.parent_id ? this.channels.find(channel.parent_id) : null;
    clear(
      this.heading,
      h(
        "div",
        { class: "title" },
        parent
          ? h("button", { class: "link crumb", onclick: () => this.selectChannel(parent.channel_id) }, `# ${parent.name}`, " / ")
          : null,
        h("h2", {}, channel.parent_id ? "↳ " : "# ", channel.name || channel.channel_id)
      ),
      h(
        "div",
        { class: "details" },
        h("code", { class: "dir", title: "project directory" }, channel.dir_path),
        channel.branch ? h("span", { class: "badge" }, `⎇ ${channel.branch}`) : null
      )
    );
  }

  renderTabs() {
    clear(
      this.tabs,
      VIEWS.map(([view, label]) =>
        h(
          "button",
          {
            role: "tab",
            id: `tab-${view}`,
            class: "view-tab",
            "aria-selected": String(view === this.route.view),
            "aria-controls": "view-panel",
            tabindex: view === this.route.view ? "0" : "-1",
            onclick: () => this.selectChannel(this.route.channel, view),
            onkeydown: (e) => this.tabKeys(e, view),
          },
          label
        )
      )
    );
  }

  // Arrow keys move between the view tabs (the WAI-ARIA tabs pattern).
  tabKeys(event, view) {
    const index = VIEWS.findIndex(([v]) => v === view);
    const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
    if (!step) return;
    event.preventDefault();
    const next = VIEWS[(index + step + VIEWS.length) % VIEWS.length][0];
    this.selectChannel(this.route.channel, next);
    document.getElementById(`tab-${next}`)?.focus();
  }

  async afterThreadCreated(id) {
    await this.channels.refresh();
    this.selectChannel(id, "chat");
  }
}

// Asks for the token when the server wants one and this tab has none (or a wrong one).
function askForToken(root, reason) {
  const input = h("input", { id: "token", type: "password", autocomplete: "current-password", required: true });
  clear(
    root,
    h(
      "form",
      {
        class: "token-form",
        onsubmit: (e) => {
          e.preventDefault();
          setToken(input.value.trim());
          boot(root);
        },
      },
      h("h1", { class: "brand" }, h("img", { src: "console/favicon.svg", alt: "", width: 28, height: 28 }), "Loop"),
      h("p", {}, reason),
      h("label", { for: "token" }, "API token"),
      input,
      h("button", { type: "submit", class: "primary" }, "Open the console")
    )
  );
  input.focus();
}

async function boot(root) {
  try {
    await api.channels();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      askForToken(
        root,
        token()
          ? "The token was not accepted. Paste the one loop-server printed at start-up."
          : "This server needs its API token. Open the URL loop-server printed at start-up, or paste the token."
      );
      return;
    }
    toast(`The server did not answer: ${err.message}`, "error");
  }
  const app = new Console(root);
  window.addEventListener("hashchange", () => {
    const route = readRoute();
    if (route.channel !== app.route.channel || route.view !== app.route.view) app.selectChannel(route.channel, route.view);
  });
  await app.start();
}

captureToken();
boot(document.getElementById("app"));
