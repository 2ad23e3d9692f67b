// Control charts with uPlot. The server sends, per point, the plotted statistic with its own
// centre line, limits and zone sigma (stair steps where limits or lot sizes change), so the page
// draws exactly what the alarms were raised on and never computes a limit itself.
import uPlot from "./vendor/uplot/uPlot.esm.js";
import { ruleLabel, ruleText } from "./rules-text.js";

const COLORS = { stat: "#4aa3ff", center: "#2fbf71", limit: "#ff4d4f", comp: "#c39bff",
  spec: "#f5a623", version: "#93a1b0", proposal: "#ffe066", excluded: "#ff9f43",
  zoneA: "rgba(255,77,79,0.10)", zoneB: "rgba(245,166,35,0.08)" };
const TITLES = { imr: ["Individuals", "Moving range"], "xbar-r": ["Subgroup means", "Ranges"],
  "xbar-s": ["Subgroup means", "Standard deviations"], p: ["Fraction defective (p)"],
  np: ["Number defective (np)"], c: ["Defects (c)"], u: ["Defects per unit (u)"],
  ewma: ["EWMA"], cusum: ["CUSUM (upper sum, sigma units)"] };
// Charts whose statistic is in the measurement's unit, where spec limits can be drawn.
export const SPEC_KINDS = new Set(["imr", "xbar-r", "xbar-s", "ewma"]);
const KEYS = ["t", "stat", "center", "ucl", "lcl", "sigma", "viol", "rules", "cStat", "cCenter",
  "cUcl", "cViol", "version", "bad"];
const isCompanionRule = (r) => /^(mr|r|s):/.test(r);

export class ChartData {
  constructor(points) {
    for (const k of KEYS) this[k] = [];
    for (const p of points) this.push(p);
  }

  push(p) {
    const v = (x) => (x === undefined ? null : x);
    this.t.push(new Date(p.ts).getTime() / 1000);
    this.stat.push(v(p.statistic));
    this.center.push(v(p.center));
    this.ucl.push(v(p.ucl));
    this.lcl.push(v(p.lcl));
    this.sigma.push(v(p.sigma));
    this.version.push(v(p.limits_version));
    this.bad.push(p.quality === "bad");
    const rules = p.violations || [];
    this.rules.push(rules);
    const main = rules.some((r) => !isCompanionRule(r));
    const comp = rules.some(isCompanionRule);
    this.viol.push(main && p.statistic !== null ? p.statistic : null);
    this.cStat.push(v(p.companion?.statistic));
    this.cCenter.push(v(p.companion?.center));
    this.cUcl.push(v(p.companion?.ucl));
    this.cViol.push(comp && p.companion?.statistic != null ? p.companion.statistic : null);
  }

  get plotted() { return this.stat.filter((x) => x !== null).length; }
  get violating() { return this.rules.filter((r) => r.length).length; }

  trim(max) {
    const extra = this.t.length - max;
    if (extra > 0) for (const k of KEYS) this[k].splice(0, extra);
  }
}

// Zone shading (A: 2-3 sigma, B: 1-2 sigma) from each point's centre and sigma, one rectangle
// per run of equal centre/sigma so a day of points costs a handful of fills, not 300,000.
function zonesPlugin(data) {
  return { hooks: { drawClear: (u) => {
    const ctx = u.ctx;
    const n = data.t.length;
    ctx.save();
    ctx.beginPath();
    ctx.rect(u.bbox.left, u.bbox.top, u.bbox.width, u.bbox.height);
    ctx.clip();
    let i = 0;
    while (i < n - 1) {
      const c = data.center[i];
      const s = data.sigma[i];
      let j = i + 1;
      while (j < n - 1 && data.center[j] === c && data.sigma[j] === s) j++;
      if (c !== null && s !== null) {
        const x0 = u.valToPos(data.t[i], "x", true);
        const x1 = u.valToPos(data.t[j], "x", true);
        for (const [k0, k1, color] of [[2, 3, COLORS.zoneA], [1, 2, COLORS.zoneB]]) {
          ctx.fillStyle = color;
          for (const sign of [1, -1]) {
            const y0 = u.valToPos(c + sign * k0 * s, "y", true);
            const y1 = u.valToPos(c + sign * k1 * s, "y", true);
            ctx.fillRect(x0, Math.min(y0, y1), x1 - x0, Math.abs(y1 - y0));
          }
        }
      }
      i = j;
    }
    ctx.restore();
  } } };
}

// Rule numbers above violating points; grey ticks at the bottom for bad (dropout) samples.
function markersPlugin(data, companion) {
  return { hooks: { draw: (u) => {
    const ctx = u.ctx;
    const [i0, i1] = [u.series[0].idxs?.[0] ?? 0, u.series[0].idxs?.[1] ?? data.t.length - 1];
    const ys = companion ? data.cStat : data.stat;
    ctx.save();
    ctx.font = `bold ${Math.round(12 * devicePixelRatio)}px system-ui, sans-serif`;
    ctx.textAlign = "center";
    ctx.fillStyle = "#fff";
    // A label that would overlap the previous one at about the same height is left out: a
    // day of points can hold thousands of violations, whose labels would only blot each other
    // out (and cost the drawing). Every violating point keeps its marker and its tooltip.
    let lastX = -Infinity;
    let lastY = 0;
    const gap = 4 * devicePixelRatio;
    const lineHeight = 14 * devicePixelRatio;
    const widths = new Map();
    for (let i = i0; i <= i1; i++) {
      const rules = data.rules[i].filter((r) => isCompanionRule(r) === companion);
      if (!rules.length || ys[i] === null) continue;
      const x = u.valToPos(data.t[i], "x", true);
      const y = u.valToPos(ys[i], "y", true) - 10 * devicePixelRatio;
      const text = rules.map(ruleLabel).join(",");
      if (!widths.has(text)) widths.set(text, ctx.measureText(text).width / 2);
      const half = widths.get(text);
      if (x - half < lastX + gap && Math.abs(y - lastY) < lineHeight) continue;
      ctx.fillText(text, x, y);
      lastX = x + half;
      lastY = y;
    }
    if (!companion) {
      ctx.fillStyle = "#93a1b0";
      const yb = u.bbox.top + u.bbox.height;
      for (let i = i0; i <= i1; i++) {
        if (data.bad[i]) ctx.fillRect(u.valToPos(data.t[i], "x", true) - 1, yb - 8, 2, 8);
      }
    }
    ctx.restore();
  } } };
}

function hline(u, value, color, label, dash) {
  if (value === null || value === undefined) return;
  const ctx = u.ctx;
  const y = u.valToPos(value, "y", true);
  if (y < u.bbox.top || y > u.bbox.top + u.bbox.height) return;
  ctx.save();
  ctx.strokeStyle = color; ctx.fillStyle = color; ctx.lineWidth = 2 * devicePixelRatio;
  ctx.setLineDash(dash.map((d) => d * devicePixelRatio));
  ctx.beginPath(); ctx.moveTo(u.bbox.left, y); ctx.lineTo(u.bbox.left + u.bbox.width, y); ctx.stroke();
  ctx.font = `${Math.round(12 * devicePixelRatio)}px system-ui, sans-serif`;
  ctx.textAlign = "right";
  ctx.fillText(label, u.bbox.left + u.bbox.width - 4, y - 4);
  ctx.restore();
}

// Spec limits, limit-version boundaries and a proposal preview, each drawn only when asked.
function overlayPlugin(opts, data, specsOn) {
  return { hooks: { draw: (u) => {
    const ctx = u.ctx;
    const root = u.root.parentElement;
    root.dataset.specs = specsOn() ? "shown" : "hidden";
    let boundaries = 0;
    if (specsOn()) {
      const { lsl, usl, target } = opts.specs;
      hline(u, lsl, COLORS.spec, "LSL", [2, 3]);
      hline(u, usl, COLORS.spec, "USL", [2, 3]);
      hline(u, target, COLORS.spec, "target", [1, 4]);
    }
    const [xmin, xmax] = [u.scales.x.min, u.scales.x.max];
    for (const v of opts.versions || []) {
      const t = Date.parse(v.effective_from) / 1000;
      if (!(t > xmin && t < xmax)) continue;
      boundaries++;
      const x = u.valToPos(t, "x", true);
      ctx.save();
      ctx.strokeStyle = COLORS.version; ctx.fillStyle = COLORS.version;
      ctx.lineWidth = 1.5 * devicePixelRatio; ctx.setLineDash([4 * devicePixelRatio, 4 * devicePixelRatio]);
      ctx.beginPath(); ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height); ctx.stroke();
      ctx.font = `${Math.round(12 * devicePixelRatio)}px system-ui, sans-serif`;
      ctx.fillText(`limits v${v.version}`, x + 4, u.bbox.top + 14 * devicePixelRatio);
      ctx.restore();
    }
    root.dataset.boundaries = String(boundaries);
    const p = opts.proposal;
    if (p) {
      hline(u, p.center, COLORS.proposal, "proposed CL", [8, 4]);
      hline(u, p.ucl, COLORS.proposal, "proposed UCL", [8, 4]);
      hline(u, p.lcl, COLORS.proposal, "proposed LCL", [8, 4]);
      ctx.save();
      ctx.strokeStyle = COLORS.excluded; ctx.lineWidth = 2.5 * devicePixelRatio;
      const r = 6 * devicePixelRatio;
      let crossed = 0;
      for (let i = 0; i < data.t.length; i++) {
        if (!p.excluded.has(data.t[i]) || data.stat[i] === null) continue;
        crossed++;
        const x = u.valToPos(data.t[i], "x", true);
        const y = u.valToPos(data.stat[i], "y", true);
        ctx.beginPath();
        ctx.moveTo(x - r, y - r); ctx.lineTo(x + r, y + r);
        ctx.moveTo(x + r, y - r); ctx.lineTo(x - r, y + r);
        ctx.stroke();
      }
      ctx.restore();
      root.dataset.excluded = String(crossed);
    }
  } } };
}

// A tooltip in words for the point under the cursor.
function tooltipPlugin(data, tip, companion, unit) {
  return { hooks: { setCursor: (u) => {
    const i = u.cursor.idx;
    if (i === null || i === undefined || u.cursor.left < 0) { tip.hidden = true; return; }
    const rules = data.rules[i].filter((r) => isCompanionRule(r) === companion);
    const value = companion ? data.cStat[i] : data.stat[i];
    tip.replaceChildren();
    const head = document.createElement("div");
    head.textContent = `${new Date(data.t[i] * 1000).toLocaleString()} · `
      + (value === null ? "no value (sensor dropout)" : `${Number(value.toPrecision(6))}${unit ? " " + unit : ""}`);
    tip.append(head);
    for (const r of rules) {
      const line = document.createElement("div");
      line.className = "tip-rule";
      line.textContent = `${ruleLabel(r)}: ${ruleText(r)}`;
      tip.append(line);
    }
    tip.hidden = false;
    const left = Math.min(u.cursor.left + 14, u.over.clientWidth - tip.offsetWidth);
    tip.style.left = `${Math.max(0, left)}px`;
    tip.style.top = `${Math.max(0, u.cursor.top - tip.offsetHeight - 10)}px`;
  } } };
}

function size(el, height) { return { width: Math.max(300, el.clientWidth), height }; }

// opts: {kind, unit, specs, showSpecs, versions, proposal, onSelect(t0, t1), height}
export function drawCharts(elMain, elComp, data, opts) {
  const stepped = uPlot.paths.stepped({ align: 1 });
  const line = (label, stroke, dash) => ({ label, stroke, width: 1.5, dash, paths: stepped,
    points: { show: false } });
  const [mainTitle, compTitle] = TITLES[opts.kind] || ["Statistic"];
  const specsOn = () => opts.showSpecs && opts.specs && SPEC_KINDS.has(opts.kind);
  const axes = [{ stroke: "#93a1b0", grid: { stroke: "#2a3340" } },
    { stroke: "#93a1b0", size: 70, grid: { stroke: "#2a3340" } }];
  const sync = uPlot.sync(`spc-${Math.random()}`);
  const cursor = { sync: { key: sync.key }, drag: { x: true, y: false, setScale: false } };
  // The y range holds the data, the limits and (when shown) the spec limits and a proposal.
  const yRange = (u, min, max) => {
    const extra = [];
    if (specsOn()) extra.push(opts.specs.lsl, opts.specs.usl, opts.specs.target);
    if (opts.proposal) extra.push(opts.proposal.ucl, opts.proposal.lcl);
    for (const x of extra) if (x !== null && x !== undefined) { min = Math.min(min, x); max = Math.max(max, x); }
    return uPlot.rangeNum(min, max, 0.1, true);
  };
  const selectHook = (u) => {
    if (u.select.width > 5 && opts.onSelect) {
      const t0 = u.posToVal(u.select.left, "x");
      const t1 = u.posToVal(u.select.left + u.select.width, "x");
      opts.onSelect(t0, t1);
    }
    u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
  };
  const tipMain = tooltip(elMain);
  const main = new uPlot({
    ...size(elMain, opts.height || 300), title: `${mainTitle}${opts.unit ? ` (${opts.unit})` : ""}`,
    scales: { x: { time: true }, y: { range: yRange } }, axes, cursor,
    plugins: [zonesPlugin(data), markersPlugin(data, false), overlayPlugin(opts, data, specsOn),
      tooltipPlugin(data, tipMain, false, opts.unit)],
    hooks: { setSelect: [selectHook] },
    series: [
      {},
      { label: "statistic", stroke: COLORS.stat, width: 1.5, points: { show: (u) => visible(u) < 400, size: 5 } },
      line("CL", COLORS.center),
      line("UCL", COLORS.limit, [6, 4]),
      line("LCL", COLORS.limit, [6, 4]),
      { label: "violation", stroke: "transparent",
        points: { show: true, size: 12, fill: COLORS.limit, stroke: "#fff", width: 2 } },
    ],
  }, mainData(data), elMain);
  let comp = null;
  elComp.hidden = !compTitle;
  if (compTitle) {
    const tipComp = tooltip(elComp);
    comp = new uPlot({
      ...size(elComp, Math.round((opts.height || 300) * 0.6)), title: compTitle,
      scales: { x: { time: true } }, axes, cursor,
      plugins: [markersPlugin(data, true), tooltipPlugin(data, tipComp, true, opts.unit)],
      hooks: { setSelect: [selectHook] },
      series: [{}, { label: compTitle, stroke: COLORS.comp, width: 1.5, points: { show: false } },
        line("CL", COLORS.center), line("UCL", COLORS.limit, [6, 4]),
        { label: "violation", stroke: "transparent",
          points: { show: true, size: 10, fill: COLORS.limit, stroke: "#fff", width: 2 } }],
    }, compData(data), elComp);
  }
  elMain.uplot = main; // for tests and devtools: the plotted scales and positions
  const mark = () => {
    elMain.dataset.plotted = String(data.plotted);
    elMain.dataset.violations = String(data.violating);
  };
  mark();
  const resize = () => {
    main.setSize(size(elMain, opts.height || 300));
    comp?.setSize(size(elComp, Math.round((opts.height || 300) * 0.6)));
  };
  window.addEventListener("resize", resize);
  return {
    main, comp,
    update() { main.setData(mainData(data)); comp?.setData(compData(data)); mark(); },
    // Overlays (specs, proposal) changed: recompute the y range and repaint.
    redraw() { main.setData(mainData(data)); },
    destroy() {
      window.removeEventListener("resize", resize); main.destroy(); comp?.destroy();
      elMain.replaceChildren(); elComp.replaceChildren();
    },
  };
}

function visible(u) {
  const [a, b] = u.series[0].idxs || [0, u.data[0].length - 1];
  return b - a;
}

function tooltip(el) {
  el.replaceChildren();
  el.style.position = "relative";
  const tip = document.createElement("div");
  tip.className = "chart-tip";
  tip.setAttribute("role", "tooltip");
  tip.hidden = true;
  el.append(tip);
  // uPlot puts its canvas after our tooltip; move the tooltip into the plotting area once built.
  queueMicrotask(() => el.querySelector(".u-over")?.append(tip));
  return tip;
}

const mainData = (d) => [d.t, d.stat, d.center, d.ucl, d.lcl, d.viol];
const compData = (d) => [d.t, d.cStat, d.cCenter, d.cUcl, d.cViol];
