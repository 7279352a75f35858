// The channel list: search, create by name or directory, delete, live badges.
import { api } from "../api.js";
import { clear, h, toast } from "../dom.js";

export class ChannelsView {
  constructor({ onSelect, onDeleted }) {
    this.onSelect = onSelect;
    this.onDeleted = onDeleted;
    this.channels = [];
    this.selected = "";
    this.query = "";
    this.agentRunning = new Map(); // live agent.status overrides until the next listing
    this.list = h("ul", { class: "channel-list", "aria-label": "Channels and threads" });
    this.search = h("input", {
      type: "search",
      placeholder: "Search channels",
      "aria-label": "Search channels",
      oninput: () => {
        this.query = this.search.value;
        clearTimeout(this.searchTimer);
        this.searchTimer = setTimeout(() => this.refresh(), 200);
      },
    });
    this.nameInput = h("input", {
      name: "name",
      required: true,
      placeholder: "Name, or /path/to/project",
      "aria-label": "New channel: a name, or a project directory",
      autocomplete: "off",
    });
    this.form = h(
      "form",
      { class: "channel-create", onsubmit: (e) => this.create(e) },
      this.nameInput,
      h("button", { type: "submit", class: "primary", "aria-label": "Create channel" }, "Create")
    );
    this.element = h(
      "div",
      { class: "channels" },
      h("div", { class: "channels-tools" }, this.search, this.form),
      this.list
    );
  }

  find(id) {
    return this.channels.find((c) => c.channel_id === id);
  }

  async refresh() {
    try {
      this.channels = await api.channels(this.query.trim());
      this.agentRunning.clear();
    } catch (err) {
      toast(`Channels: ${err.message}`, "error");
      return;
    }
    this.render();
  }

  select(id) {
    this.selected = id;
    this.render();
  }

  render() {
    const tops = this.channels.filter((c) => !c.parent_id || !this.find(c.parent_id));
    const threadsOf = (id) => this.channels.filter((c) => c.parent_id === id);
    if (!this.channels.length) {
      clear(
        this.list,
        h(
          "li",
          { class: "empty" },
          this.query ? "No channel matches." : "No channels yet: create one above."
        )
      );
      return;
    }
    clear(
      this.list,
      tops.map((c) => {
        const threads = threadsOf(c.channel_id);
        return h(
          "li",
          {},
          this.item(c, false),
          threads.length
            ? h(
                "ul",
                { class: "thread-list", "aria-label": `Threads of ${c.name}` },
                threads.map((t) => h("li", {}, this.item(t, true)))
              )
            : null
        );
      })
    );
  }

  item(c, isThread) {
    const running = this.agentRunning.has(c.channel_id)
      ? this.agentRunning.get(c.channel_id)
      : c.agent_running;
    const current = c.channel_id === this.selected;
    return h(
      "div",
      { class: `channel-row${current ? " current" : ""}` },
      h(
        "button",
        {
          class: "channel-link",
          "aria-current": current ? "page" : false,
          title: c.dir_path,
          dataset: { channelId: c.channel_id },
          onclick: () => this.onSelect(c.channel_id),
        },
        h("span", { class: "channel-name" }, isThread ? "↳ " : "# ", c.name || c.channel_id),
        h(
          "span",
          { class: "badges" },
          c.container_running
            ? h("span", { class: "badge badge-container", title: "container running" }, "container")
            : null,
          running
            ? h("span", { class: "badge badge-agent", title: "agent running" }, "agent")
            : null
        )
      ),
      h(
        "button",
        {
          class: "icon danger",
          "aria-label": `Delete ${isThread ? "thread" : "channel"} ${c.name}`,
          title: "Delete",
          onclick: () => this.remove(c, isThread),
        },
        "×"
      )
    );
  }

  async create(event) {
    event.preventDefault();
    const value = this.nameInput.value.trim();
    if (!value) return;
    try {
      // A value that looks like a path picks (or creates) the channel of that directory.
      const result = value.startsWith("/")
        ? await api.ensureChannel(value)
        : await api.createChannel(value);
      await this.refresh();
      this.onSelect(result.channel_id);
      this.nameInput.value = ""; // last: the form is cleared once the new channel is open
    } catch (err) {
      toast(`Could not create the channel: ${err.message}`, "error");
    }
  }

  async remove(c, isThread) {
    const what = isThread ? "thread" : "channel and its threads";
    if (!confirm(`Delete the ${what} “${c.name}” and its messages?`)) return;
    try {
      if (isThread) await api.deleteThread(c.channel_id);
      else await api.deleteChannel(c.channel_id);
      await this.refresh();
      this.onDeleted(c.channel_id);
    } catch (err) {
      toast(`Could not delete: ${err.message}`, "error");
    }
  }

  onEvent(event) {
    if (event.type === "agent.status") {
      this.agentRunning.set(event.channel_id, event.data.status === "running");
      this.render();
      if (event.data.status !== "running") this.refresh(); // the container may have changed
    } else if (event.type === "channel.created" || event.type === "channel.deleted") {
      this.refresh();
    } else if (event.type === "message.created" && !this.find(event.channel_id)) {
      this.refresh(); // a thread made elsewhere
    }
  }
}
