// The chat of one channel or thread: history (scroll up for older pages), the composer with
// slash commands, and what the agent is doing right now (streamed text, tool use, status).
import { api } from "../api.js";
import { clear, h, shortTime, toast } from "../dom.js";

export const SLASH_COMMANDS = [
  ["schedule", "schedule type=cron schedule='0 9 * * *' prompt=\"…\""],
  ["tasks", "list this channel's tasks"],
  ["task", "task <id>: show one task"],
  ["cancel", "cancel <id>: delete a task"],
  ["toggle", "toggle <id>: enable or disable a task"],
  ["edit", "edit <id> schedule=… prompt=…"],
  ["status", "what is running"],
  ["stop", "stop the running agent"],
  ["readme", "the server's README"],
  ["template-add", "template-add <name>"],
  ["template-list", "list task templates"],
  ["allow_user", "allow_user <user>"],
  ["deny_user", "deny_user <user>"],
  ["iamtheowner", "claim this channel"],
];

export class ChatView {
  constructor({ onThreadCreated }) {
    this.onThreadCreated = onThreadCreated;
    this.channel = null;
    this.ids = new Set();
    this.cursor = "";
    this.loadingOlder = false;
    this.generation = 0;
    this.log = h("ol", { class: "messages", "aria-label": "Messages" });
    this.older = h(
      "button",
      { class: "link older", hidden: true, onclick: () => this.loadOlder() },
      "Load older messages"
    );
    this.live = h("div", { class: "live", "aria-live": "polite" });
    this.scroller = h(
      "div",
      {
        class: "scroller",
        tabindex: "0",
        "aria-label": "Conversation",
        onscroll: () => {
          if (this.scroller.scrollTop < 120) this.loadOlder();
        },
      },
      this.older,
      this.log,
      this.live
    );
    this.input = h("textarea", {
      rows: 2,
      placeholder: "Message the agent — / for commands",
      title: "Enter sends, Shift+Enter starts a new line",
      "aria-label": "Message",
      oninput: () => this.hint(),
      onkeydown: (e) => {
        if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
          e.preventDefault();
          this.submit();
        }
      },
    });
    this.hints = h("ul", { class: "slash-hints", hidden: true, "aria-label": "Slash commands" });
    this.composer = h(
      "form",
      {
        class: "composer",
        onsubmit: (e) => {
          e.preventDefault();
          this.submit();
        },
      },
      this.hints,
      this.input,
      h("button", { type: "submit", class: "primary" }, "Send")
    );
    this.threadForm = this.buildThreadForm();
    this.element = h(
      "div",
      { class: "chat" },
      h(
        "div",
        { class: "chat-tools" },
        h(
          "button",
          {
            class: "small",
            "aria-expanded": "false",
            onclick: (e) => {
              const open = this.threadForm.hidden;
              this.threadForm.hidden = !open;
              e.currentTarget.setAttribute("aria-expanded", String(open));
              if (open) this.threadForm.querySelector("input").focus();
            },
          },
          "New thread"
        ),
        this.threadForm
      ),
      this.scroller,
      this.composer
    );
  }

  buildThreadForm() {
    const name = h("input", { name: "name", required: true, placeholder: "Thread name", "aria-label": "Thread name" });
    const first = h("input", { name: "message", placeholder: "First message (optional)", "aria-label": "First message" });
    return h(
      "form",
      {
        class: "thread-form",
        hidden: true,
        onsubmit: async (e) => {
          e.preventDefault();
          try {
            const { thread_id } = await api.createThread(this.channel.channel_id, name.value.trim(), first.value.trim());
            name.value = "";
            first.value = "";
            e.target.hidden = true;
            this.onThreadCreated(thread_id);
          } catch (err) {
            toast(`Could not create the thread: ${err.message}`, "error");
          }
        },
      },
      name,
      first,
      h("button", { type: "submit", class: "primary small" }, "Create thread")
    );
  }

  async mount(channel) {
    this.channel = channel;
    this.live.replaceChildren();
    this.streaming = null;
    this.status = null;
    if (channel.agent_running) this.showStatus("running");
    await this.reload();
    this.input.focus({ preventScroll: true });
  }

  unmount() {
    this.channel = null;
    this.generation += 1;
  }

  async reload() {
    const generation = ++this.generation;
    const id = this.channel.channel_id;
    let page;
    try {
      page = await api.messages(id);
    } catch (err) {
      toast(`History: ${err.message}`, "error");
      return;
    }
    if (generation !== this.generation) return; // another channel was opened meanwhile
    this.ids.clear();
    this.log.replaceChildren();
    this.cursor = page.next_cursor || "";
    for (const message of page.messages.slice().reverse()) this.append(message);
    this.older.hidden = !this.cursor;
    if (!page.messages.length) {
      this.log.append(h("li", { class: "empty" }, "No messages yet. Say what the agent should do."));
    }
    this.scrollToEnd();
  }

  async loadOlder() {
    if (!this.cursor || this.loadingOlder || !this.channel) return;
    this.loadingOlder = true;
    const generation = this.generation;
    try {
      const page = await api.messages(this.channel.channel_id, this.cursor);
      if (generation !== this.generation) return;
      const before = this.scroller.scrollHeight - this.scroller.scrollTop;
      for (const message of page.messages) this.prepend(message);
      this.cursor = page.next_cursor || "";
      this.older.hidden = !this.cursor;
      this.scroller.scrollTop = this.scroller.scrollHeight - before; // keep the reader's place
    } catch (err) {
      toast(`Older messages: ${err.message}`, "error");
    } finally {
      this.loadingOlder = false;
    }
  }

  key(message) {
    return message.msg_id || `id:${message.id}`;
  }

  bubble(message) {
    const who = message.is_bot ? "agent" : "user";
    return h(
      "li",
      { class: `message message-${who}`, dataset: { msgId: this.key(message) } },
      h(
        "div",
        { class: "meta" },
        h("span", { class: "author" }, message.author_name || (message.is_bot ? "Agent" : "You")),
        message.created_at
          ? h("time", { datetime: message.created_at }, shortTime(message.created_at))
          : h("time", {}, shortTime(new Date().toISOString()))
      ),
      h("div", { class: "content" }, message.content)
    );
  }

  append(message) {
    const key = this.key(message);
    if (this.ids.has(key)) return false;
    this.ids.add(key);
    this.log.querySelector(".empty")?.remove();
    this.log.append(this.bubble(message));
    return true;
  }

  prepend(message) {
    const key = this.key(message);
    if (this.ids.has(key)) return;
    this.ids.add(key);
    this.log.prepend(this.bubble(message));
  }

  nearEnd() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 160;
  }

  scrollToEnd() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  showStatus(status, error) {
    this.status?.remove();
    this.status = null;
    if (status === "running") {
      this.status = h("div", { class: "agent-status running" }, h("span", { class: "spinner", "aria-hidden": "true" }), "Agent is working…");
    } else if (status === "error") {
      this.status = h("div", { class: "agent-status error", role: "alert" }, `Agent failed: ${error || "unknown error"}`);
    }
    if (this.status) this.live.append(this.status);
  }

  activity(text) {
    const line = h("div", { class: "activity" }, text);
    this.live.insertBefore(line, this.streaming || this.status || null);
  }

  // After events were lost (a restarted server, a long disconnect): what was streaming is
  // stale, the history over REST is the truth, and the listing says whether an agent runs.
  resync(channel) {
    if (!this.channel || channel.channel_id !== this.channel.channel_id) return;
    this.channel = channel;
    this.live.replaceChildren();
    this.streaming = null;
    this.status = null;
    if (channel.agent_running) this.showStatus("running");
    this.reload();
  }

  onEvent(event) {
    if (!this.channel || event.channel_id !== this.channel.channel_id) return;
    const end = this.nearEnd();
    const data = event.data || {};
    switch (event.type) {
      case "message.created":
        if (data.is_bot) {
          this.streaming?.remove();
          this.streaming = null;
        }
        this.append({ ...data, created_at: new Date(event.timestamp).toISOString() });
        break;
      case "message.streaming":
        if (!this.streaming) {
          this.streaming = h("div", { class: "message message-agent streaming", "aria-busy": "true" },
            h("div", { class: "meta" }, h("span", { class: "author" }, "Agent"), h("span", { class: "typing" }, "streaming")),
            h("div", { class: "content" }));
          this.live.insertBefore(this.streaming, this.status);
        }
        this.streaming.querySelector(".content").textContent = data.content;
        break;
      case "tool.use":
        this.activity(`🔧 ${data.tool_name}${data.input ? ` — ${data.input}` : ""}`);
        break;
      case "agent.activity":
        this.activity(`· ${data.description || data.activity}${data.model ? ` (${data.model})` : ""}`);
        break;
      case "agent.status":
        if (data.status !== "running") {
          for (const line of this.live.querySelectorAll(".activity")) line.remove();
          this.streaming?.remove();
          this.streaming = null;
        }
        this.showStatus(data.status, data.error);
        break;
      default:
        return;
    }
    if (end) this.scrollToEnd();
  }

  hint() {
    const value = this.input.value;
    const match = /^\/(\S*)$/.exec(value);
    if (!match) {
      this.hints.hidden = true;
      return;
    }
    const shown = SLASH_COMMANDS.filter(([name]) => name.startsWith(match[1]));
    clear(
      this.hints,
      shown.map(([name, help]) =>
        h(
          "li",
          {},
          h(
            "button",
            {
              type: "button",
              class: "hint",
              onclick: () => {
                this.input.value = `/${name} `;
                this.hints.hidden = true;
                this.input.focus();
              },
            },
            h("code", {}, `/${name}`),
            " ",
            h("span", {}, help)
          )
        )
      )
    );
    this.hints.hidden = !shown.length;
  }

  async submit() {
    const text = this.input.value.trim();
    if (!text || !this.channel) return;
    const id = this.channel.channel_id;
    try {
      // "/name args" is a slash command; "//text" sends a message starting with "/".
      if (text.startsWith("/") && !text.startsWith("//")) await api.command(id, text.slice(1));
      else await api.send(id, text.startsWith("//") ? text.slice(1) : text);
      this.input.value = "";
      this.hints.hidden = true;
      this.scrollToEnd();
    } catch (err) {
      toast(`Not sent: ${err.message}`, "error");
    }
  }
}
