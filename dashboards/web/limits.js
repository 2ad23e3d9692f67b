// Control limits (engineer role): choose a baseline range on the chart, preview the phase I
// limits the server proposes with the points it excluded, activate them with a reason.
import { ApiError, enc } from "./api.js";
import { ChartData, drawCharts } from "./chart.js";
import { characteristicHeader, el } from "./layout.js";
import { ruleText } from "./rules-text.js";
import { fmt } from "./tiles.js";

const BASELINE_POINTS = 2000;

// <input type=datetime-local> speaks local time without a zone.
function toLocalInput(ms) {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 19);
}
const fromLocalInput = (v) => new Date(v).getTime();
// "UTC+01:00 Europe/Berlin": which clock the date inputs speak
function zoneName() {
  const off = -new Date().getTimezoneOffset();
  const hh = String(Math.floor(Math.abs(off) / 60)).padStart(2, "0");
  const mm = String(Math.abs(off) % 60).padStart(2, "0");
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  return `local time, UTC${off < 0 ? "−" : "+"}${hh}:${mm}${zone ? ` ${zone}` : ""}`;
}

export async function mountLimits(root, ctx, key) {
  const { api } = ctx;
  const c = await api.get(`/characteristics/${enc(key)}`);
  const head = characteristicHeader(c, "limits", api);
  if (!api.can("engineer")) {
    root.replaceChildren(el("section", { id: "limits-view" }, head,
      el("p", { class: "verdict", text: "Setting control limits needs an engineer key." })));
    return {};
  }
  const recent = await api.get(`/characteristics/${enc(key)}/chart`, { limit: 500 });
  const stamps = recent.points.map((p) => Date.parse(p.ts));
  const start = el("input", { type: "datetime-local", step: 1, id: "baseline-start", required: true,
    value: stamps.length ? toLocalInput(stamps[0]) : toLocalInput(Date.now() - 3600000) });
  const end = el("input", { type: "datetime-local", step: 1, id: "baseline-end", required: true,
    value: toLocalInput((stamps.at(-1) ?? Date.now()) + 1000) });
  const iterate = el("input", { type: "checkbox", id: "exclude-ooc", checked: true });
  const rules = el("select", { id: "exclusion-rules" },
    ...[["nelson1", "beyond 3σ (rule 1)"], ["we", "Western Electric 1-4"], ["nelson", "Nelson 1-8"]]
      .map(([v, t]) => el("option", { value: v, text: t })));
  const error = el("p", { class: "error", role: "alert" });
  const form = el("form", { class: "limits-form", id: "proposal-form" },
    el("label", {}, "Baseline from", start), el("label", {}, "to", end),
    el("label", { class: "toggle" }, iterate, "drop out-of-control points and refit"),
    el("label", {}, "exclusion rules", rules),
    el("button", { type: "submit", id: "preview", text: "Preview limits" }));
  const elMain = el("div", { id: "chart-i", class: "chart" });
  const elComp = el("div", { id: "chart-mr", class: "chart" });
  const proposalBox = el("div", { id: "proposal", class: "proposal", hidden: true });
  const history = el("tbody");
  root.replaceChildren(el("section", { id: "limits-view" }, head,
    el("p", { class: "muted", text: "Drag across the chart to choose the baseline, or type its range." }),
    form, error, elMain, elComp, proposalBox,
    el("table", { id: "limits-history" }, el("caption", { text: "Limit versions" }),
      el("thead", {}, el("tr", {}, ...["version", "effective from", "centre", "σ", "UCL", "LCL", "by", "reason"]
        .map((t) => el("th", { text: t })))), history)));

  let charts = null;
  let versions = [];
  const opts = { kind: c.chart_type, unit: c.unit, specs: null, showSpecs: false, versions: [],
    proposal: null, onSelect: (t0, t1) => {
      start.value = toLocalInput(t0 * 1000); end.value = toLocalInput(t1 * 1000); draw();
    } };

  async function draw() {
    const chart = await api.get(`/characteristics/${enc(key)}/chart`, {
      start: new Date(fromLocalInput(start.value)).toISOString(),
      end: new Date(fromLocalInput(end.value)).toISOString(), limit: BASELINE_POINTS, downsample: true });
    charts?.destroy();
    opts.versions = versions = chart.limits;
    charts = drawCharts(elMain, elComp, new ChartData(chart.points), opts);
    renderHistory(chart.limits);
  }

  function renderHistory(versions) {
    history.replaceChildren(...[...versions].reverse().map((v) => el("tr", { "data-version": v.version },
      ...[`v${v.version}`, new Date(v.effective_from).toLocaleString(), fmt(v.center, 6), fmt(v.sigma, 6),
        fmt(v.ucl, 6), fmt(v.lcl, 6), v.created_by, v.reason].map((t) => el("td", { text: String(t) })))));
  }

  function showProposal(p) {
    opts.proposal = { center: p.center, ucl: p.ucl, lcl: p.lcl,
      excluded: new Set(p.excluded.map((e) => Date.parse(e.ts) / 1000)) };
    charts?.redraw();
    const reason = el("textarea", { id: "limits-reason", rows: 2, cols: 50, required: true, minlength: 3,
      placeholder: "Why these limits, e.g. new tool, process change approved in ECR-123" });
    const activateError = el("p", { class: "error", role: "alert", id: "activate-error" });
    // Empty: from the moment of activation. A time is the operator's local time; it must be
    // later than the current version's start (the server says so otherwise).
    const effective = el("input", { type: "datetime-local", step: 1, id: "limits-effective" });
    const latest = versions.at(-1);
    const activate = el("form", { id: "activate-form", class: "limits-form" },
      el("label", {}, "Reason (kept in the audit trail)", reason),
      el("label", {}, `Effective from (${zoneName()}; empty: now)`, effective),
      el("button", { type: "submit", id: "activate", text: "Activate these limits" }),
      el("p", { class: "muted hint", text: "Points from that time on are charted and evaluated "
        + "against these limits; alarms already raised stay as they are."
        + (latest ? ` The current version v${latest.version} is in force since `
          + `${new Date(latest.effective_from).toLocaleString()}.` : "") }),
      activateError);
    activate.addEventListener("submit", async (e) => {
      e.preventDefault();
      activateError.textContent = "";
      const from = effective.value ? new Date(fromLocalInput(effective.value)) : null;
      if (from && Number.isNaN(from.getTime())) {
        activateError.textContent = "Effective from is not a complete date and time.";
        return;
      }
      const button = activate.querySelector("#activate");
      button.disabled = true;
      let v;
      try {
        v = await api.post(`/characteristics/${enc(key)}/limits`,
          { center: p.center, sigma: p.sigma, reason: reason.value.trim(),
            ...(from ? { effective_from: from.toISOString() } : {}) });
      } catch (err) {
        activateError.textContent = err instanceof ApiError ? err.message : String(err);
        button.disabled = false;
        return;
      }
      proposalBox.replaceChildren(el("p", { id: "activated", role: "status",
        text: `Activated limits version ${v.version}: centre ${fmt(v.center, 6)}, UCL ${fmt(v.ucl, 6)}, `
          + `LCL ${fmt(v.lcl, 6)}, from ${new Date(v.effective_from).toLocaleString()}.` }));
      opts.proposal = null;
      try { await draw(); } catch (err) {
        error.textContent = `Activated, but the chart could not be redrawn: ${err.message}`;
      }
    });
    const items = [["centre", fmt(p.center, 6)], ["σ", fmt(p.sigma, 6)], ["UCL", fmt(p.ucl, 6)],
      ["LCL", fmt(p.lcl, 6)], ["points", p.points], ["used", p.included],
      ["excluded", p.excluded.length], ["converged", p.converged ? "yes" : "no"]];
    proposalBox.hidden = false;
    proposalBox.replaceChildren(el("h3", { text: "Proposed limits" }),
      el("dl", { class: "summary", id: "proposal-summary" }, ...items.map(([k, v]) =>
        el("div", {}, el("dt", { text: k }), el("dd", { text: String(v), "data-field": k })))),
      p.excluded.length ? el("table", { id: "excluded" }, el("caption", { text: "Excluded from the baseline (✕ on the chart)" }),
        el("thead", {}, el("tr", {}, ...["time", "iteration", "reason"].map((t) => el("th", { text: t })))),
        el("tbody", {}, ...p.excluded.map((x) => el("tr", {}, el("td", { text: new Date(x.ts).toLocaleString() }),
          el("td", { text: String(x.iteration) }), el("td", { text: ruleText(x.reason), "data-rule": x.reason })))))
        : el("p", { text: "No point was excluded." }),
      activate);
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.textContent = "";
    try {
      await draw();
      showProposal(await api.post(`/characteristics/${enc(key)}/limits/proposal`, {
        start: new Date(fromLocalInput(start.value)).toISOString(),
        end: new Date(fromLocalInput(end.value)).toISOString(),
        exclude_out_of_control: iterate.checked, rules: rules.value }));
    } catch (err) {
      error.textContent = err instanceof ApiError ? err.message : String(err);
    }
  });
  await draw();
  return { unmount() { charts?.destroy(); } };
}
