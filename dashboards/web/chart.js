// Control charts with uPlot. The server sends, per point, the plotted statistic with its own
// centre line, limits and zone sigma (stair steps where limits or lot sizes change), so the page
// draws exactly what the alarms were raised on and never computes a limit itself.
import uPlot from "./vendor/uplot/uPlot.esm.js";

const COLORS = { stat: "#4aa3ff", center: "#2fbf71", limit: "#ff4d4f", comp: "#c39bff",
  zoneA: "rgba(255,77,79,0.10)", zoneB: "rgba(245,166,35,0.08)" };
const TITLES = { imr: ["Individuals", "Moving range"], "xbar-r": ["Subgroup means", "Ranges"],
  "xbar-s": ["Subgroup means", "Standard deviations"], p: ["Fraction defective (p)"],
  np: ["Number defective (np)"], c: ["Defects (c)"], u: ["Defects per unit (u)"],
  ewma: ["EWMA"], cusum: ["CUSUM (upper sum, sigma units)"] };
const KEYS = ["t", "stat", "center", "ucl", "lcl", "sigma", "viol", "rules", "cStat", "cCenter",
  "cUcl", "version"];

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
    const rules = p.violations || [];
    this.rules.push(rules);
    this.viol.push(rules.length && p.statistic !== null ? p.statistic : null);
    this.cStat.push(v(p.companion?.statistic));
    this.cCenter.push(v(p.companion?.center));
    this.cUcl.push(v(p.companion?.ucl));
  }

  get plotted() { return this.stat.filter((x) => x !== null).length; }

  trim(max) {
    const extra = this.t.length - max;
    if (extra > 0) for (const k of KEYS) this[k].splice(0, extra);
  }
}

// Zone shading (A: 2-3 sigma, B: 1-2 sigma) from each point's centre and sigma.
function zonesPlugin(data) {
  return {
    hooks: {
      drawClear: (u) => {
        const ctx = u.ctx;
        const band = (k0, k1, color) => {
          ctx.fillStyle = color;
          for (let i = 0; i < data.t.length - 1; i++) {
            const c = data.center[i];
            const s = data.sigma[i];
            if (c === null || s === null) continue;
            const x0 = u.valToPos(data.t[i], "x", true);
            const x1 = u.valToPos(data.t[i + 1], "x", true);
            for (const sign of [1, -1]) {
              const y0 = u.valToPos(c + sign * k0 * s, "y", true);
              const y1 = u.valToPos(c + sign * k1 * s, "y", true);
              ctx.fillRect(x0, Math.min(y0, y1), x1 - x0, Math.abs(y1 - y0));
            }
          }
        };
        band(2, 3, COLORS.zoneA);
        band(1, 2, COLORS.zoneB);
      },
    },
  };
}

function size(el) { return { width: Math.max(300, el.clientWidth), height: 260 }; }

export function drawCharts(elMain, elComp, data, kind, unit) {
  const stepped = uPlot.paths.stepped({ align: 1 });
  const line = (label, stroke, dash) => ({ label, stroke, width: 1.5, dash, paths: stepped,
    points: { show: false } });
  const [mainTitle, compTitle] = TITLES[kind] || ["Statistic"];
  const axes = [{ stroke: "#93a1b0" }, { stroke: "#93a1b0", size: 70 }];
  const main = new uPlot({
    ...size(elMain), title: `${mainTitle}${unit ? ` (${unit})` : ""}`,
    scales: { x: { time: true } }, axes, plugins: [zonesPlugin(data)],
    series: [
      {},
      { label: "statistic", stroke: COLORS.stat, width: 1.5, points: { show: true, size: 4 } },
      line("CL", COLORS.center),
      line("UCL", COLORS.limit, [6, 4]),
      line("LCL", COLORS.limit, [6, 4]),
      { label: "violation", stroke: "transparent",
        points: { show: true, size: 12, fill: COLORS.limit, stroke: "#fff", width: 2 } },
    ],
  }, [data.t, data.stat, data.center, data.ucl, data.lcl, data.viol], elMain);
  let comp = null;
  elComp.hidden = !compTitle;
  if (compTitle) {
    comp = new uPlot({
      ...size(elComp), title: compTitle, scales: { x: { time: true } }, axes,
      series: [{}, { label: compTitle, stroke: COLORS.comp, width: 1.5, points: { show: false } },
        line("CL", COLORS.center), line("UCL", COLORS.limit, [6, 4])],
    }, [data.t, data.cStat, data.cCenter, data.cUcl], elComp);
  }
  const update = () => {
    main.setData([data.t, data.stat, data.center, data.ucl, data.lcl, data.viol]);
    comp?.setData([data.t, data.cStat, data.cCenter, data.cUcl]);
    elMain.dataset.plotted = String(data.plotted);
  };
  elMain.dataset.plotted = String(data.plotted);
  const resize = () => { main.setSize(size(elMain)); comp?.setSize(size(elComp)); };
  window.addEventListener("resize", resize);
  return {
    update,
    destroy() { window.removeEventListener("resize", resize); main.destroy(); comp?.destroy(); },
  };
}
