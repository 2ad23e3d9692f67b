// I-MR control charts with uPlot: individuals with per-point (stair-step) CL/UCL/LCL and
// violation markers, and the moving-range chart below it.
import uPlot from "./vendor/uplot/uPlot.esm.js";

const COLORS = { value: "#4aa3ff", center: "#2fbf71", limit: "#ff4d4f", mr: "#c39bff" };
const MR_D2 = 1.128; // span-2 moving range, Montgomery Table VI (n = 2)
const MR_D4 = 3.267;

function limitsAt(limits, version) {
  return limits.find((l) => l.version === version) || null;
}

// Series arrays from chart points (as returned by /chart, or appended live).
export class ChartData {
  constructor(points, limits) {
    this.limits = limits;
    this.t = []; this.x = []; this.cl = []; this.ucl = []; this.lcl = [];
    this.mr = []; this.mrCl = []; this.mrUcl = []; this.viol = []; this.rules = [];
    for (const p of points) this.push(p);
  }

  current() { return this.limits.length ? this.limits[this.limits.length - 1] : null; }

  push(p) {
    const good = p.quality !== "bad" && p.value !== null;
    const version = p.limits_version ?? this.current()?.version;
    const l = version ? limitsAt(this.limits, version) : null;
    let prev = null;
    for (let i = this.x.length - 1; i >= 0; i--) if (this.x[i] !== null) { prev = this.x[i]; break; }
    this.t.push(new Date(p.ts).getTime() / 1000);
    this.x.push(good ? p.value : null);
    this.cl.push(l ? l.center : null);
    this.ucl.push(l ? l.ucl : null);
    this.lcl.push(l ? l.lcl : null);
    this.mr.push(good && prev !== null ? Math.abs(p.value - prev) : null);
    this.mrCl.push(l ? MR_D2 * l.sigma : null);
    this.mrUcl.push(l ? MR_D4 * MR_D2 * l.sigma : null);
    const violated = (p.violations || []).length > 0;
    this.viol.push(violated && good ? p.value : null);
    this.rules.push(p.violations || []);
  }

  trim(max) {
    const extra = this.t.length - max;
    if (extra <= 0) return;
    for (const k of ["t", "x", "cl", "ucl", "lcl", "mr", "mrCl", "mrUcl", "viol", "rules"]) {
      this[k].splice(0, extra);
    }
  }
}

function size(el) { return { width: Math.max(300, el.clientWidth), height: 260 }; }

export function drawCharts(elI, elMR, data, unit) {
  const stepped = uPlot.paths.stepped({ align: 1 });
  const line = (label, stroke, dash) => ({ label, stroke, width: 1.5, dash, paths: stepped,
    points: { show: false } });
  const i = new uPlot({
    ...size(elI), title: `Individuals (${unit || "value"})`,
    scales: { x: { time: true } },
    series: [
      {},
      { label: "value", stroke: COLORS.value, width: 1.5, points: { show: true, size: 4 } },
      line("CL", COLORS.center),
      line("UCL", COLORS.limit, [6, 4]),
      line("LCL", COLORS.limit, [6, 4]),
      { label: "violation", stroke: "transparent",
        points: { show: true, size: 12, fill: COLORS.limit, stroke: "#fff", width: 2 } },
    ],
    axes: [{ stroke: "#93a1b0" }, { stroke: "#93a1b0", size: 70 }],
  }, [data.t, data.x, data.cl, data.ucl, data.lcl, data.viol], elI);
  const mr = new uPlot({
    ...size(elMR), title: "Moving range",
    scales: { x: { time: true } },
    series: [
      {},
      { label: "MR", stroke: COLORS.mr, width: 1.5, points: { show: false } },
      line("MR-bar", COLORS.center),
      line("UCL", COLORS.limit, [6, 4]),
    ],
    axes: [{ stroke: "#93a1b0" }, { stroke: "#93a1b0", size: 70 }],
  }, [data.t, data.mr, data.mrCl, data.mrUcl], elMR);
  const update = () => {
    i.setData([data.t, data.x, data.cl, data.ucl, data.lcl, data.viol]);
    mr.setData([data.t, data.mr, data.mrCl, data.mrUcl]);
  };
  const resize = () => { i.setSize(size(elI)); mr.setSize(size(elMR)); };
  window.addEventListener("resize", resize);
  return {
    update,
    destroy() { window.removeEventListener("resize", resize); i.destroy(); mr.destroy(); },
  };
}
