// The operator page: log in with an API key, pick a characteristic, watch its live I-MR chart.
import { Api, ApiError } from "./api.js";
import { ChartData, drawCharts } from "./chart.js";

const KEY_STORAGE = "spc.apiKey";
const MAX_POINTS = 2000;
const $ = (sel) => document.querySelector(sel);

let api = null;
let live = null;
let current = null; // { key, data, charts, unit }
const status = new Map(); // characteristic key -> "ok" | "violation" | "nolimits"

function show(el, visible) { el.hidden = !visible; }

async function login(key) {
  api = new Api(key);
  try {
    const list = await api.get("/characteristics");
    localStorage.setItem(KEY_STORAGE, key);
    show($("#login"), false); show($("#app"), true); show($("#logout"), true);
    renderList(list);
    const wanted = new URLSearchParams(location.search).get("c");
    const first = list.find((c) => c.key === wanted) || list[0];
    if (first) await select(first.key);
    live?.stop();
    live = api.live(["*"], onEvent, (s) => {
      const badge = $("#connection");
      badge.dataset.state = s; badge.textContent = s;
    });
  } catch (err) {
    api = null;
    localStorage.removeItem(KEY_STORAGE);
    show($("#login"), true); show($("#app"), false);
    $("#login-error").textContent = err instanceof ApiError && err.status === 401
      ? "That key is not valid." : `Cannot log in: ${err.message}`;
  }
}

function renderList(list) {
  const nav = $("#characteristics");
  nav.replaceChildren();
  for (const c of list) {
    if (!status.has(c.key)) status.set(c.key, c.limits ? "ok" : "nolimits");
    const b = document.createElement("button");
    b.dataset.key = c.key;
    b.dataset.status = status.get(c.key);
    b.innerHTML = `<span></span><span class="last"></span>`;
    b.firstChild.textContent = c.name;
    b.onclick = () => select(c.key);
    nav.append(b);
  }
}

function setStatus(key, value) {
  status.set(key, value);
  const b = $(`nav button[data-key="${CSS.escape(key)}"]`);
  if (b) b.dataset.status = value;
}

async function select(key) {
  const chart = await api.get(`/characteristics/${encodeURIComponent(key)}/chart`,
    { limit: MAX_POINTS });
  current?.charts.destroy();
  const data = new ChartData(chart.points);
  const c = chart.characteristic;
  current = { key, data, limits: chart.limits, unit: c.unit,
    charts: drawCharts($("#chart-i"), $("#chart-mr"), data, c.chart_type, c.unit) };
  $("#chart-title").textContent = `${c.name} (${c.key})`;
  document.querySelectorAll("nav button").forEach((b) =>
    b.setAttribute("aria-current", String(b.dataset.key === key)));
  renderSummary();
  await renderAlarms();
}

function renderSummary() {
  const { data, limits } = current;
  const l = limits.at(-1);
  const i = data.t.length - 1;
  const last = data.stat.filter((v) => v !== null).at(-1);
  const fmt = (v) => (v === null || v === undefined ? "–" : Number(v).toPrecision(6));
  const items = [["last", fmt(last)], ["CL", fmt(data.center[i])], ["UCL", fmt(data.ucl[i])],
    ["LCL", fmt(data.lcl[i])], ["σ", fmt(l?.sigma)], ["limits", l ? `v${l.version}` : "none yet"],
    ["points", data.t.length]];
  $("#summary").replaceChildren(...items.flatMap(([k, v]) => {
    const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = v; dd.dataset.field = k;
    const div = document.createElement("div"); div.append(dt, dd); return [div];
  }));
}

async function renderAlarms() {
  const alarms = await api.get("/alarms", { characteristic: current.key, limit: 20 });
  const rows = alarms.map((a) => {
    const tr = document.createElement("tr");
    tr.dataset.state = a.state;
    for (const v of [a.id, a.rule, new Date(a.first_ts).toLocaleString(), a.point_count, a.state]) {
      const td = document.createElement("td"); td.textContent = v; tr.append(td);
    }
    return tr;
  });
  $("#alarms tbody").replaceChildren(...rows);
}

function onEvent(event) {
  if (event.type === "alarm" && event.alarm.state === "open") setStatus(event.characteristic, "violation");
  if (event.type === "limits" && status.get(event.characteristic) === "nolimits") {
    setStatus(event.characteristic, "ok");
  }
  if (!current || event.characteristic !== current.key) return;
  if (event.type === "point") {
    current.data.push(event);
    current.data.trim(MAX_POINTS);
    current.charts.update();
    renderSummary();
  } else if (event.type === "limits") {
    current.limits.push(event.limits);
    renderSummary();
  } else if (event.type === "alarm") {
    renderAlarms();
  }
}

$("#login").addEventListener("submit", (e) => {
  e.preventDefault();
  login($("#api-key").value.trim());
});
$("#logout").addEventListener("click", () => {
  localStorage.removeItem(KEY_STORAGE);
  live?.stop();
  location.reload();
});

const saved = localStorage.getItem(KEY_STORAGE) || new URLSearchParams(location.hash.slice(1)).get("key");
if (saved) login(saved); else show($("#login"), true);
