// One connection to /api/ws for the whole page. It remembers the server run (epoch) and the
// last event seq it delivered; after a drop it reconnects with ?since= so the hub replays what
// was missed. Events at or below the last seq are never delivered twice. When the hub cannot
// replay (a restarted server, too much missed) it says replay.truncated and listeners get a
// "resync": they reload their state over REST.
import { socketUrl } from "./api.js";

export class EventStream {
  constructor() {
    this.epoch = "";
    this.seq = null;
    this.state = "connecting";
    this.listeners = new Set();
    this.stateListeners = new Set();
    this.retry = 0;
    this.socket = null;
  }

  on(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  onState(listener) {
    this.stateListeners.add(listener);
    listener(this.state);
    return () => this.stateListeners.delete(listener);
  }

  setState(state) {
    this.state = state;
    for (const listener of this.stateListeners) listener(state);
  }

  emit(event) {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (err) {
        console.error("event listener failed", err);
      }
    }
  }

  start() {
    const params = { hello: 1 };
    if (this.seq !== null) {
      params.since = this.seq;
      params.epoch = this.epoch;
    }
    const socket = new WebSocket(socketUrl("api/ws", params));
    this.socket = socket;
    let opened = false;
    socket.onopen = () => {
      opened = true;
    };
    socket.onmessage = (message) => {
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return;
      }
      if (event.type === "hello") {
        // A reconnect to another server run is followed by replay.truncated (handled below).
        this.epoch = event.epoch;
        if (this.seq === null) this.seq = event.seq;
        this.retry = 0;
        this.setState("live");
        return;
      }
      if (event.type === "replay.truncated") {
        this.epoch = event.epoch;
        this.seq = event.seq;
        this.emit({ type: "resync" });
        return;
      }
      if (typeof event.seq === "number") {
        if (this.seq !== null && event.seq <= this.seq) return; // already delivered
        this.seq = event.seq;
      }
      this.emit(event);
    };
    socket.onclose = () => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (!opened && this.retry === 0) this.retry = 1;
      this.setState("reconnecting");
      const delay = Math.min(5000, 250 * 2 ** Math.min(this.retry, 5));
      this.retry += 1;
      setTimeout(() => this.start(), delay);
    };
  }
}
