// Talks to the server: REST under /api/v1 and the live WebSocket. Knows nothing about the DOM.

const API = "/api/v1";

export class ApiError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

export class Api {
  constructor(key) { this.key = key; }

  async get(path, params = {}) {
    const query = new URLSearchParams(params).toString();
    const res = await fetch(`${API}${path}${query ? "?" + query : ""}`,
      { headers: { Authorization: `Bearer ${this.key}` } });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new ApiError(res.status, body.detail || res.statusText);
    return body;
  }

  // Subscribes to live events; reconnects with backoff. onState("live"|"offline").
  live(keys, onEvent, onState) {
    let delay = 500;
    let socket = null;
    let stopped = false;
    const connect = () => {
      const scheme = location.protocol === "https:" ? "wss" : "ws";
      socket = new WebSocket(`${scheme}://${location.host}${API}/ws`);
      socket.onopen = () => socket.send(JSON.stringify({ auth: this.key, subscribe: keys }));
      socket.onmessage = (msg) => {
        const event = JSON.parse(msg.data);
        if (event.type === "subscribed") { delay = 500; onState("live"); return; }
        onEvent(event);
      };
      socket.onclose = () => {
        onState("offline");
        if (!stopped) setTimeout(connect, delay = Math.min(delay * 2, 10000));
      };
    };
    connect();
    return { stop() { stopped = true; socket?.close(); } };
  }
}
