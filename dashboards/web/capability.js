// Process capability of one characteristic: histogram with spec limits and the fitted normal
// curves (overall and within sigma), Cp/Cpk/Pp/Ppk with confidence intervals, normality verdict.
import { ApiError, enc } from "./api.js";
import { characteristicHeader, el } from "./layout.js";
import { fmt } from "./tiles.js";

const NS = "http://www.w3.org/2000/svg";
const RANGES = [["All data", null], ["Last 24 h", 86400], ["Last 7 d", 7 * 86400]];

function svgEl(parent, tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  parent.append(e);
  return e;
}

const pdf = (x, mean, sd) => Math.exp(-0.5 * ((x - mean) / sd) ** 2) / (sd * Math.sqrt(2 * Math.PI));

export function histogramSvg(cap) {
  const W = 720, H = 340, L = 50, R = 20, T = 28, B = 40;
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("id", "histogram");
  svg.setAttribute("aria-label", `Histogram of ${cap.n} values with spec limits`
    + `${cap.lsl !== null ? ` LSL ${cap.lsl}` : ""}${cap.usl !== null ? ` USL ${cap.usl}` : ""}`
    + ` and the fitted normal curve (mean ${fmt(cap.mean)}, sigma ${fmt(cap.sigma_overall)})`);
  const { edges, counts } = cap.histogram;
  const width = edges[1] - edges[0];
  const sd = cap.sigma_overall;
  const marks = [cap.lsl, cap.usl, cap.target].filter((v) => v !== null);
  let x0 = Math.min(edges[0], cap.mean - 4 * sd, ...marks);
  let x1 = Math.max(edges.at(-1), cap.mean + 4 * sd, ...marks);
  const pad = (x1 - x0) * 0.04; x0 -= pad; x1 += pad;
  const expected = (x, s) => cap.n * width * pdf(x, cap.mean, s);
  const ymax = Math.max(...counts, expected(cap.mean, sd), expected(cap.mean, cap.sigma_within)) * 1.1;
  const X = (v) => L + (W - L - R) * (v - x0) / (x1 - x0);
  const Y = (c) => T + (H - T - B) * (1 - c / ymax);
  svgEl(svg, "line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#93a1b0" });
  svgEl(svg, "line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#93a1b0" });
  for (const t of [0, 0.5, 1].map((f) => Math.round(f * ymax / 1.1))) {
    svgEl(svg, "text", { x: L - 6, y: Y(t) + 4, "text-anchor": "end", fill: "#93a1b0", "font-size": 11 }, String(t));
  }
  for (let i = 0; i <= 6; i++) {
    const v = x0 + (x1 - x0) * i / 6;
    svgEl(svg, "text", { x: X(v), y: H - B + 16, "text-anchor": "middle", fill: "#93a1b0", "font-size": 11 }, fmt(v, 4));
  }
  counts.forEach((c, i) => {
    svgEl(svg, "rect", { x: X(edges[i]) + 0.5, y: Y(c), width: Math.max(1, X(edges[i + 1]) - X(edges[i]) - 1),
      height: H - B - Y(c), fill: "#4aa3ff", "fill-opacity": 0.75, class: "bin" });
  });
  const curve = (s, attrs) => {
    let d = "";
    for (let i = 0; i <= 120; i++) {
      const v = x0 + (x1 - x0) * i / 120;
      d += `${i ? "L" : "M"}${X(v).toFixed(1)},${Y(expected(v, s)).toFixed(1)}`;
    }
    svgEl(svg, "path", { d, fill: "none", "stroke-width": 2.5, ...attrs });
  };
  curve(sd, { stroke: "#e8edf2", class: "normal-overall" });
  if (cap.sigma_within) curve(cap.sigma_within, { stroke: "#c39bff", "stroke-dasharray": "6 4", class: "normal-within" });
  for (const [v, label, dash] of [[cap.lsl, "LSL", ""], [cap.usl, "USL", ""], [cap.target, "target", "3 4"]]) {
    if (v === null) continue;
    svgEl(svg, "line", { x1: X(v), y1: T - 6, x2: X(v), y2: H - B, stroke: "#f5a623", "stroke-width": 2.5,
      "stroke-dasharray": dash, "data-spec": label });
    svgEl(svg, "text", { x: X(v), y: T - 10, "text-anchor": "middle", fill: "#f5a623", "font-size": 12 }, `${label} ${fmt(v)}`);
  }
  svgEl(svg, "text", { x: W - R, y: T + 14, "text-anchor": "end", fill: "#e8edf2", "font-size": 12 }, "— normal, overall σ");
  svgEl(svg, "text", { x: W - R, y: T + 30, "text-anchor": "end", fill: "#c39bff", "font-size": 12 }, "- - normal, within σ");
  return svg;
}

function indices(cap) {
  const ci = (i) => (i ? `${fmt(i.low, 3)} – ${fmt(i.high, 3)}` : "–");
  const rows = [["Cp", cap.cp, cap.cp_ci], ["Cpk", cap.cpk, cap.cpk_ci], ["Cpm", cap.cpm, null],
    ["Pp", cap.pp, cap.pp_ci], ["Ppk", cap.ppk, cap.ppk_ci]];
  const conf = (cap.cpk_ci?.confidence ?? 0.95) * 100;
  return el("table", { id: "cap-indices" },
    el("caption", { text: "Capability indices" }),
    el("thead", {}, el("tr", {}, el("th", { text: "index" }), el("th", { text: "value" }),
      el("th", { text: `${conf}% confidence interval` }))),
    el("tbody", {}, ...rows.map(([name, v, i]) => el("tr", { "data-index": name },
      el("th", { text: name }), el("td", { text: fmt(v, 3), "data-field": "value" }),
      el("td", { text: ci(i), "data-field": "ci" })))));
}

function facts(cap) {
  const items = [["n", cap.n], ["mean", fmt(cap.mean)], ["σ within", fmt(cap.sigma_within)],
    ["σ overall", fmt(cap.sigma_overall)], ["PPM out of spec (within)", fmt(cap.ppm_within_total, 4)],
    ["PPM out of spec (overall)", fmt(cap.ppm_overall_total, 4)]];
  return el("dl", { class: "summary" }, ...items.map(([k, v]) =>
    el("div", {}, el("dt", { text: k }), el("dd", { text: String(v) }))));
}

function verdict(cap) {
  const n = cap.normality;
  if (!n) return el("p", { class: "verdict", id: "normality", text: "Normality not tested (too few values)." });
  const text = n.rejected
    ? `Not normal (Anderson-Darling A² = ${fmt(n.statistic, 3)}, p = ${fmt(n.p_value, 3)}): `
      + "the indices assume a normal distribution and may mislead."
    : `Consistent with a normal distribution (Anderson-Darling A² = ${fmt(n.statistic, 3)}, `
      + `p = ${fmt(n.p_value, 3)}).`;
  return el("p", { class: "verdict", id: "normality", "data-rejected": String(n.rejected), text });
}

export async function mountCapability(root, ctx, key) {
  const { api } = ctx;
  const c = await api.get(`/characteristics/${enc(key)}`);
  const body = el("div", { id: "cap-body" });
  const toolbar = el("div", { class: "toolbar", role: "toolbar", "aria-label": "data range" },
    ...RANGES.map(([label, s]) => el("button", { text: label, "aria-pressed": String(s === null),
      onclick: (e) => {
        toolbar.querySelectorAll("button").forEach((b) => b.setAttribute("aria-pressed", String(b === e.target)));
        load(s);
      } })));
  root.replaceChildren(el("section", { id: "capability-view" }, characteristicHeader(c, "capability", api),
    toolbar, body));

  async function load(seconds) {
    const params = seconds ? { start: new Date(Date.now() - seconds * 1000).toISOString() } : {};
    let cap;
    try {
      cap = await api.get(`/characteristics/${enc(key)}/capability`, params);
    } catch (err) {
      // No specs, an attributes chart or too little data: the server says why, in words.
      if (!(err instanceof ApiError) || err.status !== 400) throw err;
      body.replaceChildren(el("p", { class: "verdict", id: "cap-unavailable", text: err.message }));
      return;
    }
    const warnings = cap.warnings.length
      ? el("ul", { id: "cap-warnings" }, ...cap.warnings.map((w) => el("li", { text: w }))) : null;
    body.replaceChildren(el("div", { class: "cap-grid" },
      el("div", { class: "cap-svg" }, histogramSvg(cap)),
      el("div", {}, indices(cap), verdict(cap), warnings)), facts(cap));
  }
  // Skip requests that can only fail: say why directly.
  if (["p", "np", "c", "u"].includes(c.chart_type)) {
    body.replaceChildren(el("p", { class: "verdict", id: "cap-unavailable",
      text: `Capability needs measured values; ${c.name} is an attributes (${c.chart_type}) chart.` }));
  } else if (c.lsl === null && c.usl === null) {
    body.replaceChildren(el("p", { class: "verdict", id: "cap-unavailable",
      text: `${c.name} has no spec limits, so capability cannot be computed. An engineer sets LSL/USL.` }));
  } else {
    await load(null);
  }
  return {};
}
