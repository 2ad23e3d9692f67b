// Talks to the server: REST under /api/v1 and the live WebSocket. Knows nothing about the DOM.

const API = "/api/v1";
const ROLE_LEVEL = { operator: 1, engineer: 2, admin: 3 };

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status;
  }
}

export class Api {
  constructor(key) { this.key = key; this.role = "operator"; }

  async request(method, path, { params = {}, body } = {}) {
    const clean = Object.fromEntries(Object.entries(params)
      .filter(([, v]) => v !== undefined && v !== null && v !== ""));
    const query = new URLSearchParams(clean).toString();
    const headers = { Authorization: `Bearer ${this.key}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch(`${API}${path}${query ? "?" + query : ""}`,
      { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw new ApiError(res.status, readable(data.detail) || res.statusText);
    return data;
  }

  get(path, params = {}) { return this.request("GET", path, { params }); }
  post(path, body = {}) { return this.request("POST", path, { body }); }

  delete(path) { return this.request("DELETE", path); }

  // Who this key is (GET /me): its role decides which controls are shown. The server checks
  // every request itself; hiding a control only spares the user a 403.
  async whoami() {
    const me = await this.get("/me");
    this.role = me.role; this.name = me.name; this.scope = me.scope;
    return me;
  }

  // The prefix of the key in use (spc_<prefix>_<secret>), to recognise it in the key list.
  get prefix() { return this.key.split("_")[1] || ""; }

  can(role) { return ROLE_LEVEL[this.role] >= ROLE_LEVEL[role]; }

  // Subscribes to live events; reconnects with backoff. onState("live"|"offline"). After a
  // reconnect onState("live") fires again so views can refetch what they missed meanwhile.
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

// FastAPI's 422 detail is a list of {loc, msg}; make it one readable line.
function readable(detail) {
  if (!Array.isArray(detail)) return detail;
  return detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
}

export const enc = encodeURIComponent;
