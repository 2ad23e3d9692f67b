// What the overview and andon screens show about every characteristic, kept current from the
// WebSocket: last value, usual sampling interval, open/acknowledged alarms, Cpk, and the status
// colour derived from them. Views subscribe and re-render the tiles that changed.
import { enc } from "./api.js";

const RECENT = 30; // points loaded per characteristic to learn its last value and interval
export const STALE_FACTOR = 5; // stale: no point for 5x the usual interval ...
export const STALE_FLOOR_S = 10; // ... and never sooner than 10 s (agents upload in batches)
const CPK_REFRESH_MS = 60_000;
const ORDER = { violation: 0, acknowledged: 1, stale: 2, nolimits: 3, ok: 4 };
export const STATUS_TEXT = { violation: "out of control", acknowledged: "alarm acknowledged",
  stale: "no recent data", nolimits: "collecting baseline", ok: "in control" };

function median(xs) {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

export class Store {
  constructor(api) {
    this.api = api;
    this.characteristics = new Map(); // key -> characteristic (with limits)
    this.hierarchy = [];
    this.state = new Map(); // key -> { last, lastTs, seenAt, stamps, violations, cpk }
    this.alarms = new Map(); // id -> alarm (open or acknowledged only)
    this.listeners = new Set();
    this.timers = [];
    this.cpkWanted = 0; // mounted views showing tiles
    this.cpkAt = null;
  }

  // A view that shows Cpk on tiles: fresh values now if none or old ones; returns the release.
  wantCpk() {
    this.cpkWanted++;
    if (this.cpkAt === null || Date.now() - this.cpkAt > CPK_REFRESH_MS) this.refreshCpk();
    let released = false;
    return () => { if (!released) { released = true; this.cpkWanted--; } };
  }

  async load() {
    const [list, tree, open, acked] = await Promise.all([
      this.api.get("/characteristics"), this.api.get("/hierarchy"),
      this.api.get("/alarms", { state: "open", limit: 1000 }),
      this.api.get("/alarms", { state: "acknowledged", limit: 1000 }),
    ]);
    // Also called again after a reconnect: start from what the server says now.
    this.timers.forEach(clearInterval);
    this.timers = [];
    this.hierarchy = tree;
    this.characteristics = new Map(list.map((c) => [c.key, c]));
    this.alarms = new Map([...open, ...acked].map((a) => [a.id, a]));
    await Promise.all(list.map((c) => this.loadRecent(c.key)));
    // Cpk is a capability study over each characteristic's whole history: computed only while
    // tiles show it (overview, andon), not for a chart opened directly, whose own requests it
    // would slow down.
    this.cpkAt = null;
    if (this.cpkWanted) this.refreshCpk();
    this.timers.push(setInterval(() => { if (this.cpkWanted) this.refreshCpk(); }, CPK_REFRESH_MS));
    // Staleness changes with the clock, not with events.
    let last = new Map();
    this.timers.push(setInterval(() => {
      const now = new Map([...this.characteristics.keys()].map((k) => [k, this.status(k)]));
      for (const [k, s] of now) if (last.get(k) !== s) this.notify(k);
      last = now;
    }, 1000));
  }

  async loadRecent(key) {
    const chart = await this.api.get(`/characteristics/${enc(key)}/chart`, { limit: RECENT });
    const st = this.entry(key);
    const good = chart.points.filter((p) => p.statistic !== null);
    st.good = good.length;
    st.stamps = chart.points.map((p) => Date.parse(p.ts));
    const lastPoint = good.at(-1);
    if (lastPoint) {
      st.last = lastPoint.statistic;
      st.violations = lastPoint.violations;
    }
    if (chart.points.length) st.lastTs = st.seenAt = Date.parse(chart.points.at(-1).ts);
  }

  entry(key) {
    if (!this.state.has(key)) {
      this.state.set(key, { last: null, lastTs: null, seenAt: null, stamps: [], violations: [],
        cpk: null, cpkError: null, good: 0 });
    }
    return this.state.get(key);
  }

  hasSpecs(c) {
    return (c.lsl !== null || c.usl !== null) && !["p", "np", "c", "u"].includes(c.chart_type);
  }

  async refreshCpk() {
    this.cpkAt = Date.now();
    // Capability needs at least two values; asking sooner only earns a 400.
    await Promise.all([...this.characteristics.values()]
      .filter((c) => this.hasSpecs(c) && this.entry(c.key).good >= 2)
      .map(async (c) => {
        const st = this.entry(c.key);
        try {
          const cap = await this.api.get(`/characteristics/${enc(c.key)}/capability`);
          st.cpk = cap.cpk; st.cpkError = null;
        } catch (err) { st.cpk = null; st.cpkError = err.message; }
        this.notify(c.key);
      }));
  }

  // Usual interval between points in ms (median of the recent gaps).
  interval(key) {
    const s = this.entry(key).stamps;
    return median(s.slice(1).map((t, i) => t - s[i]).filter((d) => d > 0));
  }

  isStale(key, now = Date.now()) {
    const st = this.entry(key);
    if (st.seenAt === null) return true;
    const usual = this.interval(key) ?? STALE_FLOOR_S * 1000;
    return now - st.seenAt > Math.max(STALE_FACTOR * usual, STALE_FLOOR_S * 1000);
  }

  alarmsOf(key) { return [...this.alarms.values()].filter((a) => a.characteristic === key); }

  status(key) {
    const alarms = this.alarmsOf(key);
    if (alarms.some((a) => a.state === "open")) return "violation";
    if (alarms.length) return "acknowledged";
    if (this.entry(key).violations.length) return "violation";
    if (this.isStale(key)) return "stale";
    if (!this.characteristics.get(key)?.limits) return "nolimits";
    return "ok";
  }

  static rank(status) { return ORDER[status]; }

  // A characteristic created after the page loaded: fetch the list and tree again, then tell
  // views the structure changed (key "*").
  async reloadStructure() {
    if (this.reloading) return;
    this.reloading = true;
    try {
      const [list, tree] = await Promise.all([this.api.get("/characteristics"), this.api.get("/hierarchy")]);
      this.hierarchy = tree;
      for (const c of list) {
        if (!this.characteristics.has(c.key)) { this.characteristics.set(c.key, c); await this.loadRecent(c.key); }
      }
      this.notify("*");
    } finally { this.reloading = false; }
  }

  onEvent(event) {
    const key = event.characteristic;
    if (key && event.type !== "alarm" && !this.characteristics.has(key)) {
      this.reloadStructure();
      return;
    }
    if (event.type === "point" && this.characteristics.has(key)) {
      const st = this.entry(key);
      const ts = Date.parse(event.ts);
      if (st.lastTs === null || ts >= st.lastTs) {
        st.lastTs = ts;
        // Arrival time, not sample time: an edge clock that is off must not make a live
        // characteristic look stale.
        st.seenAt = Date.now();
        if (event.statistic !== null) {
          st.last = event.statistic; st.violations = event.violations; st.good++;
        }
        st.stamps.push(ts);
        if (st.stamps.length > RECENT) st.stamps.shift();
      }
      this.notify(key);
    } else if (event.type === "alarm") {
      const a = event.alarm;
      if (a.state === "closed") this.alarms.delete(a.id); else this.alarms.set(a.id, a);
      if (key) { this.entry(key).violations = a.state === "open" ? [a.rule] : []; }
      this.notify(key);
    } else if (event.type === "limits" && this.characteristics.has(key)) {
      this.characteristics.get(key).limits = event.limits;
      this.notify(key);
    }
  }

  subscribe(fn) { this.listeners.add(fn); return () => this.listeners.delete(fn); }
  notify(key) { for (const fn of [...this.listeners]) fn(key); } // a copy: listeners may resubscribe
  stop() { this.timers.forEach(clearInterval); this.listeners.clear(); }
}
