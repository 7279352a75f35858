// Scheduled tasks of a channel: list, create, edit, enable/disable, delete, run now, runs.
import { api } from "../api.js";
import { clear, h, relativeTime, shortTime, toast } from "../dom.js";

const TYPES = {
  cron: { label: "Cron (UTC)", placeholder: "0 9 * * 1-5", help: "five fields: minute hour day month weekday, in UTC" },
  interval: { label: "Interval", placeholder: "1h30m", help: "a duration such as 90s, 15m, 1h30m" },
  once: { label: "Once", placeholder: "", help: "a date and time (your local time)" },
};

// <input type=datetime-local> gives local time without a zone; the API wants RFC 3339.
function onceSchedule(value) {
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? value : date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

export class TasksView {
  constructor() {
    this.channel = null;
    this.openRuns = new Set();
    this.list = h("ul", { class: "tasks", "aria-label": "Tasks" });
    this.form = this.taskForm(null);
    this.element = h(
      "div",
      { class: "tasks-view" },
      h("h2", { class: "section-title" }, "New task"),
      this.form,
      h("h2", { class: "section-title" }, "Tasks"),
      this.list
    );
  }

  taskForm(task) {
    const prefix = task ? `task-${task.id}-` : "new-task-";
    const type = h(
      "select",
      { id: `${prefix}type`, name: "type" },
      Object.entries(TYPES).map(([value, t]) => h("option", { value, selected: task?.type === value }, t.label))
    );
    const schedule = h("input", { id: `${prefix}schedule`, name: "schedule", required: true, autocomplete: "off" });
    const help = h("small", { class: "help", id: `${prefix}help` });
    schedule.setAttribute("aria-describedby", help.id);
    const prompt = h("textarea", { id: `${prefix}prompt`, name: "prompt", rows: 2, required: true });
    const autoDelete = h("input", {
      id: `${prefix}auto-delete`,
      name: "auto_delete_sec",
      type: "number",
      min: "0",
      placeholder: "0 = keep",
    });
    const setType = () => {
      const t = TYPES[type.value];
      schedule.type = type.value === "once" ? "datetime-local" : "text";
      schedule.placeholder = t.placeholder;
      help.textContent = t.help;
    };
    type.addEventListener("change", setType);
    setType();
    if (task) {
      schedule.value = task.type === "once" ? toLocalInput(task.schedule) : task.schedule;
      prompt.value = task.prompt;
      autoDelete.value = task.auto_delete_sec || "";
    }
    const field = (label, control, extra) =>
      h("div", { class: "field" }, h("label", { for: control.id }, label), control, extra);
    return h(
      "form",
      {
        class: "task-form",
        onsubmit: async (e) => {
          e.preventDefault();
          const fields = {
            type: type.value,
            schedule: type.value === "once" ? onceSchedule(schedule.value) : schedule.value.trim(),
            prompt: prompt.value.trim(),
            auto_delete_sec: Number(autoDelete.value || 0),
          };
          try {
            if (task) await api.updateTask(task.id, fields);
            else await api.createTask({ channel_id: this.channel.channel_id, ...fields });
            if (!task) {
              schedule.value = "";
              prompt.value = "";
              autoDelete.value = "";
            }
            toast(task ? "Task saved" : "Task created");
            await this.refresh();
          } catch (err) {
            toast(`Task not saved: ${err.message}`, "error");
          }
        },
      },
      h("div", { class: "row" }, field("Type", type), field("Schedule", schedule, help)),
      field("Prompt", prompt),
      h(
        "div",
        { class: "row end" },
        field("Delete after (seconds)", autoDelete),
        h("button", { type: "submit", class: "primary" }, task ? "Save" : "Create task")
      )
    );
  }

  async mount(channel) {
    this.channel = channel;
    await this.refresh();
  }

  unmount() {
    this.channel = null;
  }

  async refresh() {
    if (!this.channel) return;
    let tasks;
    try {
      tasks = await api.tasks(this.channel.channel_id);
    } catch (err) {
      toast(`Tasks: ${err.message}`, "error");
      return;
    }
    if (!tasks.length) {
      clear(this.list, h("li", { class: "empty" }, "No tasks. Create one above, or type /schedule in the chat."));
      return;
    }
    clear(this.list, tasks.map((t) => this.item(t)));
    for (const id of this.openRuns) this.loadRuns(id);
  }

  item(task) {
    const editor = h("div", { class: "task-editor", hidden: true }, this.taskForm(task));
    const runs = h("div", { class: "task-runs", id: `runs-${task.id}`, hidden: !this.openRuns.has(task.id) });
    const enabled = h("input", {
      type: "checkbox",
      checked: task.enabled,
      "aria-label": `Task ${task.id} enabled`,
      onchange: async (e) => {
        try {
          await api.updateTask(task.id, { enabled: e.target.checked });
          await this.refresh();
        } catch (err) {
          e.target.checked = !e.target.checked;
          toast(`Not changed: ${err.message}`, "error");
        }
      },
    });
    return h(
      "li",
      { class: `task${task.enabled ? "" : " disabled"}`, dataset: { taskId: String(task.id) } },
      h(
        "div",
        { class: "task-head" },
        h("label", { class: "switch" }, enabled, h("span", {}, task.enabled ? "on" : "off")),
        h("span", { class: "badge" }, task.type),
        h("code", { class: "schedule" }, task.type === "once" ? shortTime(task.schedule) : task.schedule),
        h(
          "span",
          { class: "next-run" },
          task.enabled ? "next run " : "paused · was due ",
          h("time", { datetime: task.next_run_at, title: new Date(task.next_run_at).toLocaleString() },
            `${relativeTime(task.next_run_at)} (${shortTime(task.next_run_at)})`)
        )
      ),
      h("p", { class: "task-prompt" }, task.prompt),
      h(
        "div",
        { class: "task-actions" },
        h("button", { class: "small primary", onclick: () => this.runNow(task) }, "Run now"),
        h(
          "button",
          {
            class: "small",
            "aria-expanded": String(this.openRuns.has(task.id)),
            "aria-controls": runs.id,
            onclick: (e) => {
              const open = !this.openRuns.has(task.id);
              if (open) this.openRuns.add(task.id);
              else this.openRuns.delete(task.id);
              runs.hidden = !open;
              e.currentTarget.setAttribute("aria-expanded", String(open));
              if (open) this.loadRuns(task.id);
            },
          },
          "Runs"
        ),
        h("button", { class: "small", onclick: () => { editor.hidden = !editor.hidden; } }, "Edit"),
        h("button", { class: "small danger", onclick: () => this.remove(task) }, "Delete")
      ),
      editor,
      runs
    );
  }

  async runNow(task) {
    try {
      await api.runTask(task.id);
      toast(`Task ${task.id} started`);
      this.openRuns.add(task.id);
      await this.refresh();
    } catch (err) {
      toast(err.status === 409 ? "That task is already running" : `Not started: ${err.message}`, "error");
    }
  }

  async remove(task) {
    if (!confirm(`Delete task ${task.id} and its run history?`)) return;
    try {
      await api.deleteTask(task.id);
      this.openRuns.delete(task.id);
      await this.refresh();
    } catch (err) {
      toast(`Not deleted: ${err.message}`, "error");
    }
  }

  async loadRuns(id) {
    const box = this.list.querySelector(`#runs-${id}`);
    if (!box) return;
    let page;
    try {
      page = await api.taskRuns(id);
    } catch (err) {
      clear(box, h("p", { class: "error" }, `Runs: ${err.message}`));
      return;
    }
    if (!page.runs.length) {
      clear(box, h("p", { class: "empty" }, "Not run yet."));
      return;
    }
    // A run's record is finished just after its agent.status; look again until it is.
    clearTimeout(this.runTimers?.get(id));
    if (page.runs.some((r) => r.status === "running")) {
      this.runTimers ??= new Map();
      this.runTimers.set(id, setTimeout(() => this.loadRuns(id), 1500));
    }
    clear(
      box,
      h(
        "table",
        { class: "runs" },
        h("caption", { class: "sr-only" }, `Runs of task ${id}`),
        h("thead", {}, h("tr", {}, h("th", {}, "Started"), h("th", {}, "Status"), h("th", {}, "Result"))),
        h(
          "tbody",
          {},
          page.runs.map((r) =>
            h(
              "tr",
              { class: `run run-${r.status}` },
              h("td", {}, h("time", { datetime: r.started_at }, shortTime(r.started_at))),
              h("td", {}, h("span", { class: `badge status-${r.status}` }, r.status)),
              h("td", { class: r.error_text ? "error" : "" }, r.error_text || r.response_text || "")
            )
          )
        )
      )
    );
  }

  onEvent(event) {
    if (!this.channel) return;
    if (event.type === "agent.status" && event.channel_id === this.channel.channel_id) {
      this.refresh();
    } else if (event.type?.startsWith("task.")) {
      this.refresh();
    }
  }
}

function toLocalInput(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}
