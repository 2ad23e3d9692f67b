// The control chart of one characteristic: live tail or a history range (server-downsampled),
// rule markers with words, spec limits on demand, limit-version boundaries, its alarms.
import { enc } from "./api.js";
import { ChartData, SPEC_KINDS, drawCharts } from "./chart.js";
import { ackButton } from "./alarms.js";
import { characteristicHeader, el } from "./layout.js";
import { ruleLabel, ruleText } from "./rules-text.js";
import { fmt } from "./tiles.js";

const LIVE_POINTS = 500; // the live tail
const RANGE_POINTS = 2000; // a history range is downsampled to about this many points
const PRESETS = [["1 h", 3600], ["8 h", 8 * 3600], ["24 h", 86400], ["7 d", 7 * 86400]];

// route: "<key>" (live tail), "<key>?last=<seconds>" or "<key>?start=<iso>&end=<iso>", so a
// time range can be bookmarked or put on a line monitor.
export async function mountChart(root, ctx, route) {
  const { api } = ctx;
  const [key, query] = route.split("?");
  const q = new URLSearchParams(query || "");
  const now = Date.now() / 1000;
  let mode = q.has("last") ? { live: false, start: now - Number(q.get("last")), end: now }
    : q.has("start") ? { live: false, start: Date.parse(q.get("start")) / 1000,
      end: q.has("end") ? Date.parse(q.get("end")) / 1000 : now } : { live: true };
  let current = null; // { data, charts, limits }
  // the chart's requests start now, beside the characteristic's (one round trip less)
  const started = requests(mode);
  const c = await api.get(`/characteristics/${enc(key)}`);
  if (ctx.current && !ctx.current()) return {}; // the user moved on: leave the page alone
  const opts = { kind: c.chart_type, unit: c.unit, specs: { lsl: c.lsl, usl: c.usl, target: c.target },
    showSpecs: false, versions: [], onSelect: (t0, t1) => load({ live: false, start: t0, end: t1 }) };

  const summary = el("dl", { id: "summary", class: "summary" });
  const rangeLabel = el("span", { id: "range-label", class: "muted", "aria-live": "polite" });
  const hasSpecs = SPEC_KINDS.has(c.chart_type) && (c.lsl !== null || c.usl !== null);
  const specToggle = el("label", { class: "toggle" },
    el("input", { type: "checkbox", id: "show-specs", onchange: (e) => {
      opts.showSpecs = e.target.checked; current?.charts.redraw();
    } }), " Spec limits");
  const span = () => (mode.live ? extent() : [mode.start, mode.end]);
  const extent = () => {
    const t = current?.data.t || [];
    return t.length ? [t[0], t.at(-1)] : [Date.now() / 1000 - 3600, Date.now() / 1000];
  };
  const zoomOut = () => {
    const [a, b] = span(); const w = Math.max(b - a, 60);
    load({ live: false, start: a - w / 2, end: Math.min(b + w / 2, Date.now() / 1000 + 60) });
  };
  // Buttons as well as drag-to-zoom: uPlot's drag selection needs a mouse, panels have touch.
  const zoomIn = () => {
    const [a, b] = span(); const m = (a + b) / 2; const w = Math.max((b - a) / 4, 5);
    load({ live: false, start: m - w, end: m + w });
  };
  const pan = (dir) => {
    const [a, b] = span(); const w = Math.max(b - a, 60);
    load({ live: false, start: a + dir * w / 2, end: b + dir * w / 2 });
  };
  const toolbar = el("div", { class: "toolbar", role: "toolbar", "aria-label": "time range" },
    el("button", { id: "live-btn", text: "Live", onclick: () => load({ live: true }) }),
    ...PRESETS.map(([label, s]) => el("button", { text: `Last ${label}`, onclick: () => {
      const now = Date.now() / 1000; load({ live: false, start: now - s, end: now });
    } })),
    el("button", { text: "◀", "aria-label": "earlier", onclick: () => pan(-1) }),
    el("button", { text: "▶", "aria-label": "later", onclick: () => pan(1) }),
    el("button", { text: "Zoom in", id: "zoom-in", onclick: zoomIn }),
    el("button", { text: "Zoom out", id: "zoom-out", onclick: zoomOut }),
    hasSpecs ? specToggle : null, rangeLabel);
  const hint = el("p", { class: "muted hint", text: "Drag across the chart to zoom into that time range; hover a point for its rules in words." });
  const elMain = el("div", { id: "chart-i", class: "chart", "data-testid": "chart-i" });
  const elComp = el("div", { id: "chart-mr", class: "chart", "data-testid": "chart-mr" });
  const violBody = el("tbody");
  const violTable = el("table", { id: "violations" },
    el("caption", { text: "Rule violations in view (newest first)" }),
    el("thead", {}, el("tr", {}, el("th", { text: "time" }), el("th", { text: "rule" }),
      el("th", { text: "meaning" }))), violBody);
  const alarmBody = el("tbody");
  const alarmTable = el("table", { id: "alarms" },
    el("caption", { text: "Alarms of this characteristic" }),
    el("thead", {}, el("tr", {}, ...["#", "rule", "first point", "points", "state", "cause", ""]
      .map((t) => el("th", { text: t })))), alarmBody);
  root.replaceChildren(el("section", { id: "chart-view" }, characteristicHeader(c, "chart", api),
    summary, toolbar, hint, elMain, elComp, el("div", { class: "two-col" }, violTable, alarmTable)));

  let loads = 0;
  async function load(next, { full, tail, range } = requests(next)) {
    const token = ++loads;
    if (range) rangeLabel.textContent = "loading the range…";
    if (tail) {
      const newest = await tail;
      if (token === loads && !full.done) show(next, newest, "preview");
    }
    const chart = await full;
    if (token !== loads) return; // a newer request won
    show(next, chart, next.live ? "live" : "range");
  }

  // The requests of a view: the chart, and for a range while nothing is on screen yet also the
  // range's newest points (one fast request), drawn at once and replaced by the whole range
  // when it arrives (a long range takes the server longer: it scores every point).
  function requests(next) {
    const range = next.live ? null : { start: new Date(next.start * 1000).toISOString(),
      end: new Date(next.end * 1000).toISOString() };
    const full = fetchChart(next.live ? { limit: LIVE_POINTS } : { ...range, limit: RANGE_POINTS, downsample: true });
    const tail = range && !current
      ? api.get(`/characteristics/${enc(key)}/chart`, { ...range, limit: LIVE_POINTS }) : null;
    // awaited later (or never, if the view fails first): no unhandled rejection meanwhile
    full.catch(() => {}); tail?.catch(() => {});
    return { full, tail, range };
  }

  // performance marks: devtools and benchmarks/bench_dashboard.py read fetch vs draw time
  function fetchChart(params) {
    performance.mark("chart-fetch-start");
    const p = api.get(`/characteristics/${enc(key)}/chart`, params).then((chart) => {
      performance.measure("chart-fetch", "chart-fetch-start");
      p.done = true;
      return chart;
    });
    return p;
  }

  function show(next, chart, state) {
    mode = next;
    current?.charts.destroy();
    performance.mark("chart-draw-start");
    const data = new ChartData(chart.points);
    opts.versions = chart.limits;
    current = { data, limits: chart.limits, charts: drawCharts(elMain, elComp, data, opts) };
    performance.measure("chart-draw", "chart-draw-start");
    elMain.dataset.mode = state;
    elMain.dataset.downsampled = String(chart.downsampled);
    rangeLabel.textContent = next.live ? `live: last ${LIVE_POINTS} points`
      : state === "preview" ? `newest ${chart.points.length} points; loading the whole range…`
        : `${new Date(next.start * 1000).toLocaleString()} – ${new Date(next.end * 1000).toLocaleString()}`
          + `${chart.downsampled ? " (downsampled: extremes of each time bucket and every violation)" : ""}`;
    document.getElementById("live-btn").setAttribute("aria-pressed", String(next.live));
    renderSummary();
    renderViolations();
  }

  function renderSummary() {
    const { data, limits } = current;
    const l = limits.at(-1);
    const i = data.t.length - 1;
    const last = data.stat.filter((v) => v !== null).at(-1);
    const items = [["last", fmt(last, 6)], ["CL", fmt(data.center[i], 6)], ["UCL", fmt(data.ucl[i], 6)],
      ["LCL", fmt(data.lcl[i], 6)], ["σ", fmt(l?.sigma, 6)], ["limits", l ? `v${l.version}` : "none yet"],
      ["points", data.t.length]];
    summary.replaceChildren(...items.map(([k, v]) => el("div", {}, el("dt", { text: k }),
      el("dd", { text: String(v), "data-field": k }))));
  }

  function renderViolations() {
    const { data } = current;
    const rows = [];
    for (let i = data.t.length - 1; i >= 0 && rows.length < 50; i--) {
      for (const r of data.rules[i]) {
        rows.push(el("tr", {}, el("td", { text: new Date(data.t[i] * 1000).toLocaleString() }),
          el("td", { text: ruleLabel(r), "data-rule": r }), el("td", { text: ruleText(r) })));
      }
    }
    violBody.replaceChildren(...rows);
  }

  async function renderAlarms() {
    const alarms = await api.get("/alarms", { characteristic: key, limit: 20 });
    alarmBody.replaceChildren(...alarms.map((a) => {
      const tr = el("tr", { "data-state": a.state, "data-alarm": a.id });
      for (const v of [a.id, `${ruleLabel(a.rule)} · ${ruleText(a.rule)}`,
        new Date(a.first_ts).toLocaleString(), a.point_count, a.state, a.cause || ""]) {
        tr.append(el("td", { text: String(v) }));
      }
      tr.append(el("td", {}, a.state === "open" ? ackButton(ctx, a) : null));
      return tr;
    }));
  }

  await load(mode, started);
  await renderAlarms();
  return {
    onEvent(event) {
      if (event.characteristic !== key || !current) return;
      if (event.type === "point" && mode.live) {
        performance.mark("chart-update-start");
        current.data.push(event);
        current.data.trim(LIVE_POINTS);
        current.charts.update();
        renderSummary();
        if (event.violations.length) renderViolations();
        performance.measure("chart-update", "chart-update-start");
      } else if (event.type === "limits") {
        current.limits.push(event.limits);
        renderSummary();
      } else if (event.type === "alarm") {
        renderAlarms();
      }
    },
    unmount() { loads++; current?.charts.destroy(); },
  };
}
