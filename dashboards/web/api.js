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

  // The server has no "who am I" route, so the role is read off what the key may do: the audit
  // trail is engineer+, key management admin-only. Done once per login and cached.
  async probeRole() {
    const allowed = async (path) => {
      try { await this.get(path, { limit: 1 }); return true; } catch (err) {
        if (err instanceof ApiError && err.status === 403) return false;
        throw err;
      }
    };
    this.role = !(await allowed("/audit")) ? "operator" : (await allowed("/keys")) ? "admin"
      : "engineer";
    return this.role;
  }

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
