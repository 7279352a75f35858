// Memory: search the channel project's notes, and index them now.
import { api } from "../api.js";
import { clear, h, toast } from "../dom.js";

export class MemoryView {
  constructor() {
    this.channel = null;
    this.query = h("input", { id: "memory-query", type: "search", required: true, placeholder: "What do the notes say about…" });
    this.topK = h("input", { id: "memory-top-k", type: "number", min: "1", max: "50", value: "5" });
    this.results = h("ol", { class: "memory-results", "aria-label": "Search results", "aria-live": "polite" });
    this.summary = h("p", { class: "summary", role: "status" });
    this.element = h(
      "div",
      { class: "memory-view" },
      h(
        "form",
        { class: "memory-form", role: "search", onsubmit: (e) => this.search(e) },
        h("div", { class: "field grow" }, h("label", { for: this.query.id }, "Search memory"), this.query),
        h("div", { class: "field narrow" }, h("label", { for: this.topK.id }, "Results"), this.topK),
        h("button", { type: "submit", class: "primary" }, "Search"),
        h("button", { type: "button", onclick: () => this.index() }, "Index now")
      ),
      this.summary,
      this.results
    );
  }

  mount(channel) {
    if (this.channel?.channel_id !== channel.channel_id) {
      this.results.replaceChildren();
      this.summary.textContent = `Notes of ${channel.dir_path}`;
    }
    this.channel = channel;
  }

  unmount() {}

  async search(event) {
    event.preventDefault();
    const query = this.query.value.trim();
    if (!query) return;
    this.summary.textContent = "Searching…";
    try {
      const { results } = await api.searchMemory(this.channel.channel_id, query, Number(this.topK.value || 5));
      const found = results || [];
      this.summary.textContent = found.length
        ? `${found.length} result${found.length === 1 ? "" : "s"} for “${query}”`
        : results === null
          ? "Nothing is indexed for this project yet."
          : `No notes match “${query}”.`;
      clear(
        this.results,
        found.map((r) =>
          h(
            "li",
            { class: "memory-result" },
            h("div", { class: "meta" }, h("code", {}, r.file_path), h("span", { class: "score" }, `score ${Number(r.score).toPrecision(3)}`)),
            r.content ? h("p", { class: "content" }, r.content) : null
          )
        )
      );
    } catch (err) {
      this.summary.textContent = "";
      toast(`Search failed: ${err.message}`, "error");
    }
  }

  async index() {
    this.summary.textContent = "Indexing…";
    try {
      const { count } = await api.indexMemory(this.channel.channel_id);
      this.summary.textContent = `Indexed: ${count} file${count === 1 ? "" : "s"} (re)indexed.`;
    } catch (err) {
      this.summary.textContent = "";
      toast(`Indexing failed: ${err.message}`, "error");
    }
  }

  onEvent() {}
}
