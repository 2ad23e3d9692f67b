// Alarm handling: open alarms, the acknowledge dialog (assignable cause + corrective action),
// history with filters, and the Pareto of causes.
import { el, modalForm, when } from "./layout.js";
import { ruleLabel, ruleText } from "./rules-text.js";

let causes = null; // loaded once per page: the list changes rarely

async function loadCauses(api) {
  causes ??= await api.get("/alarm-causes");
  return causes;
}

const describe = (a) => `${ruleLabel(a.rule)} · ${ruleText(a.rule)}`;

// Opens the modal acknowledge dialog for one alarm; resolves with the updated alarm or null.
export async function acknowledge(ctx, alarm) {
  const list = await loadCauses(ctx.api);
  const categories = [...new Set(list.map((c) => c.category))];
  const select = el("select", { id: "ack-cause", required: true },
    el("option", { value: "", text: "— choose the cause —" }),
    ...categories.map((cat) => el("optgroup", { label: cat },
      ...list.filter((c) => c.category === cat).map((c) => el("option", { value: c.key, text: c.label })))));
  const action = el("textarea", { id: "ack-action", rows: 4, maxlength: 4000,
    placeholder: "What was done, e.g. replaced worn insert, re-zeroed gauge" });
  return modalForm({
    id: "ack-dialog", title: `Acknowledge alarm #${alarm.id}`, submit: "Acknowledge", focus: select,
    body: [
      el("p", { text: `${alarm.characteristic || alarm.subject || ""}: ${describe(alarm)}` }),
      el("p", { class: "muted", text: `first point ${when(alarm.first_ts)}, ${alarm.point_count} point(s)` }),
      el("label", {}, "Assignable cause", select),
      el("label", {}, "Corrective action", action)],
    action: () => ctx.api.post(`/alarms/${alarm.id}/acknowledge`,
      { cause: select.value, corrective_action: action.value.trim() }),
  });
}

export function ackButton(ctx, alarm, after) {
  return el("button", { class: "ack", text: "Acknowledge", "data-ack": alarm.id,
    onclick: async () => { if (await acknowledge(ctx, alarm)) after?.(); } });
}

function alarmRow(ctx, a, refresh) {
  const tr = el("tr", { "data-state": a.state, "data-alarm": a.id, "data-severity": a.severity });
  const target = a.characteristic
    ? el("a", { href: `#/chart/${encodeURIComponent(a.characteristic)}`, text: a.characteristic })
    : document.createTextNode(a.subject || a.kind);
  tr.append(el("td", { text: String(a.id) }), el("td", {}, target), el("td", { text: describe(a) }),
    el("td", { text: when(a.first_ts) }), el("td", { text: String(a.point_count) }),
    el("td", { text: a.state }),
    el("td", { text: a.cause ? causes?.find((c) => c.key === a.cause)?.label ?? a.cause : "", "data-cause": a.cause || "" }),
    el("td", { text: a.corrective_action || "" }));
  const actions = el("td", { class: "actions" });
  if (a.state === "open") actions.append(ackButton(ctx, a, refresh));
  if (a.state !== "closed") {
    actions.append(el("button", { class: "secondary", text: "Close", "data-close": a.id, onclick: async () => {
      await ctx.api.post(`/alarms/${a.id}/close`, { note: "" }); refresh();
    } }));
  }
  tr.append(actions);
  return tr;
}

function alarmTable(id, caption) {
  const body = el("tbody");
  const table = el("table", { id, class: "alarm-table" }, el("caption", { text: caption }),
    el("thead", {}, el("tr", {}, ...["#", "characteristic", "rule", "first point", "points", "state",
      "cause", "corrective action", ""].map((t) => el("th", { text: t })))), body);
  return { table, body };
}

// The Pareto of causes as an SVG: bars by count, a cumulative-percent line.
function paretoSvg(bars) {
  const W = 640, H = 280, L = 40, R = 40, T = 16, B = 90;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "Pareto of assignable causes: "
    + bars.map((b) => `${b.label} ${b.count}`).join(", "));
  const add = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    svg.append(e);
    return e;
  };
  const max = Math.max(1, ...bars.map((b) => b.count));
  const w = Math.min(90, (W - L - R) / Math.max(1, bars.length));
  const y = (count) => T + (H - T - B) * (1 - count / max);
  const yp = (pct) => T + (H - T - B) * (1 - pct / 100);
  add("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#93a1b0" });
  add("text", { x: L - 6, y: T + 10, "text-anchor": "end", fill: "#93a1b0", "font-size": 11 }, String(max));
  add("text", { x: W - R + 6, y: T + 10, fill: "#93a1b0", "font-size": 11 }, "100%");
  let path = "";
  bars.forEach((b, i) => {
    const x = L + i * w;
    add("rect", { x: x + 4, y: y(b.count), width: w - 8, height: H - B - y(b.count), fill: "#4aa3ff",
      "data-cause": b.cause });
    add("text", { x: x + w / 2, y: y(b.count) - 4, "text-anchor": "middle", fill: "#e8edf2", "font-size": 12 },
      String(b.count));
    add("text", { x: x + w / 2, y: H - B + 14, "text-anchor": "end", fill: "#e8edf2", "font-size": 11,
      transform: `rotate(-35 ${x + w / 2} ${H - B + 14})` }, b.label);
    path += `${i ? "L" : "M"}${x + w / 2},${yp(b.cumulative_percent)}`;
  });
  if (path) add("path", { d: path, fill: "none", stroke: "#f5a623", "stroke-width": 2 });
  return svg;
}

export async function mountAlarms(root, ctx) {
  const { api } = ctx;
  const open = alarmTable("open-alarms", "Open and acknowledged alarms");
  const hist = alarmTable("alarm-history", "Matching alarms, newest first");
  await loadCauses(api);
  const chars = await api.get("/characteristics");
  const lines = (await api.get("/hierarchy")).flatMap((s) => s.lines);
  const field = (label, input) => el("label", {}, label, input);
  const f = {
    state: el("select", { name: "state" }, ...["", "open", "acknowledged", "closed"]
      .map((s) => el("option", { value: s, text: s || "any" }))),
    characteristic: el("select", { name: "characteristic" }, el("option", { value: "", text: "any" }),
      ...chars.map((c) => el("option", { value: c.key, text: c.name }))),
    line: el("select", { name: "line" }, el("option", { value: "", text: "any" }),
      ...lines.map((l) => el("option", { value: l.key, text: l.name }))),
    rule: el("input", { name: "rule", placeholder: "e.g. we1", size: 10 }),
    kind: el("select", { name: "kind" }, ...["", "spc", "agent_silent", "source_down"]
      .map((s) => el("option", { value: s, text: s || "any" }))),
    since: el("input", { name: "since", type: "date" }),
    until: el("input", { name: "until", type: "date" }),
  };
  const filters = el("form", { id: "alarm-filters", class: "filters", "aria-label": "history filters" },
    ...Object.entries(f).map(([k, input]) => field(k, input)),
    el("button", { type: "submit", text: "Apply" }));
  const paretoBox = el("div", { id: "pareto", class: "pareto" });
  root.replaceChildren(el("section", { id: "alarms-view" }, el("h2", { text: "Alarms" }), open.table,
    el("h3", { text: "Alarm history" }), filters, hist.table,
    el("h3", { text: "Pareto of assignable causes" }), paretoBox));

  const dayIso = (d, end) => (d ? new Date(`${d}T00:00:00`).getTime() + (end ? 86400000 : 0) : null);
  const range = () => ({
    since: f.since.value ? new Date(dayIso(f.since.value)).toISOString() : null,
    until: f.until.value ? new Date(dayIso(f.until.value, true)).toISOString() : null });
  const refresh = async () => {
    const [o, a] = await Promise.all([api.get("/alarms", { state: "open", limit: 500 }),
      api.get("/alarms", { state: "acknowledged", limit: 500 })]);
    open.body.replaceChildren(...[...o, ...a].map((x) => alarmRow(ctx, x, refresh)));
    const params = { ...range(), state: f.state.value, characteristic: f.characteristic.value,
      line: f.line.value, rule: f.rule.value.trim(), kind: f.kind.value, limit: 200 };
    hist.body.replaceChildren(...(await api.get("/alarms", params)).map((x) => alarmRow(ctx, x, refresh)));
    const bars = await api.get("/alarms/pareto", { ...range(), line: f.line.value });
    paretoBox.replaceChildren(bars.length ? paretoSvg(bars)
      : el("p", { class: "muted", text: "No acknowledged alarms with a cause in this range yet." }));
  };
  filters.addEventListener("submit", (e) => { e.preventDefault(); refresh(); });
  await refresh();
  let pending = null;
  return {
    onEvent(event) {
      // Alarm events come in bursts (one per violation): refresh once per burst.
      if (event.type !== "alarm" || pending) return;
      pending = setTimeout(() => { pending = null; refresh(); }, 300);
    },
    unmount() { clearTimeout(pending); },
  };
}
