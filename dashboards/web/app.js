// The operator page: log in with an API key, then route between the views by the URL hash
// (#/, #/chart/<key>, #/capability/<key>, #/limits/<key>, #/alarms, #/andon[/<line>], and for
// admins #/keys and #/webhooks).
// One WebSocket feeds the shared store and the mounted view.
import { Api, ApiError } from "./api.js";
import { mountAlarms } from "./alarms.js";
import { mountAndon } from "./andon.js";
import { mountCapability } from "./capability.js";
import { mountChart } from "./chartview.js";
import { mountLimits } from "./limits.js";
import { mountOverview } from "./overview.js";
import { Store } from "./store.js";

const KEY_STORAGE = "spc.apiKey";
const $ = (sel) => document.querySelector(sel);

let api = null;
let store = null;
let live = null;
let view = null; // the mounted view: { onEvent?, unmount? }
let routing = 0;
let storeLoading = null; // the store's first load, started by the first view that needs it
let early = []; // live events that arrived before the store's first load finished

// The tiles' data (every characteristic's recent points and the open alarms) is loaded when a
// view needs it, or after the first view is up: a chart opened directly does not wait for it.
function ready() {
  storeLoading ??= store.load().then(() => {
    for (const e of early ?? []) store.onEvent(e);
    early = null;
  }, (err) => { storeLoading = null; throw err; }); // the next view tries again
  return storeLoading;
}

const ROUTES = [
  // (a view that waited for the store draws nothing if the user has moved on meanwhile)
  [/^#?\/?$/, "overview", async (root, ctx) => {
    await ctx.ready(); return ctx.current() ? mountOverview(root, ctx) : null;
  }],
  [/^#\/chart\/(.+)$/, "overview", (root, ctx, key) => mountChart(root, ctx, key)],
  [/^#\/capability\/(.+)$/, "overview", (root, ctx, key) => mountCapability(root, ctx, key)],
  [/^#\/limits\/(.+)$/, "overview", (root, ctx, key) => mountLimits(root, ctx, key)],
  [/^#\/alarms$/, "alarms", (root, ctx) => mountAlarms(root, ctx)],
  [/^#\/andon(?:\/(.+))?$/, "andon", async (root, ctx, line) => {
    await ctx.ready(); return ctx.current() ? mountAndon(root, ctx, line) : null;
  }],
  // admin screens: loaded when first opened, not with every page
  [/^#\/keys$/, "keys", async (root, ctx) => (await import("./keys.js")).mountKeys(root, ctx)],
  [/^#\/webhooks$/, "webhooks",
    async (root, ctx) => (await import("./webhooks.js")).mountWebhooks(root, ctx)],
];

function show(el, visible) { el.hidden = !visible; }

async function login(key) {
  api = new Api(key);
  try {
    await api.whoami();
  } catch (err) {
    api = null;
    localStorage.removeItem(KEY_STORAGE);
    show($("#login"), true); show($("#view"), false);
    $("#login-error").textContent = err instanceof ApiError && err.status === 401
      ? "That key is not valid." : err instanceof ApiError && err.status === 403
        ? "This key cannot read data (agent keys only upload)." : `Cannot log in: ${err.message}`;
    return;
  }
  localStorage.setItem(KEY_STORAGE, key);
  document.body.dataset.role = api.role;
  $("#role").textContent = api.role;
  $("#role").title = api.name ? `key: ${api.name}` : "";
  // admin-only screens: the links are not even shown to other roles
  document.querySelectorAll("#main-nav [data-needs]").forEach((a) => show(a, api.can(a.dataset.needs)));
  for (const el of ["#login"]) show($(el), false);
  for (const el of ["#view", "#logout", "#role", "#main-nav"]) show($(el), true);
  store = new Store(api);
  store.subscribe(updateAlarmCount);
  let wasOffline = false;
  live = api.live(["*"], onEvent, (s) => {
    const badge = $("#connection");
    badge.dataset.state = s; badge.textContent = s;
    // Back after a drop: reload what may have been missed meanwhile.
    if (s === "live" && wasOffline) { storeLoading = null; early = []; ready().then(route); }
    wasOffline = s === "offline";
  });
  await route();
  // then, once the browser has painted the view and is idle, the tiles' data and the alarm count
  // in the header, for whichever view comes next (a view that needs it shows its error)
  const later = window.requestIdleCallback || ((f) => setTimeout(f, 50));
  later(() => ready().then(updateAlarmCount, () => {}), { timeout: 2000 });
}

function updateAlarmCount() {
  const n = [...store.alarms.values()].filter((a) => a.state === "open").length;
  const badge = $("#alarm-count");
  badge.textContent = n ? String(n) : "";
  badge.dataset.count = String(n);
}

async function route() {
  if (!api) return;
  const token = ++routing;
  const hash = location.hash || "#/";
  const [re, section, mount] = ROUTES.find(([r]) => r.test(hash)) || ROUTES[0];
  const arg = hash.match(re)?.[1];
  view?.unmount?.();
  view = null;
  const root = $("#view");
  root.dataset.view = hash.split("/")[1] || "overview";
  document.body.classList.toggle("andon", section === "andon");
  document.querySelectorAll("#main-nav a").forEach((a) =>
    a.toggleAttribute("aria-current", a.dataset.route === section));
  const ctx = { api, store, ready, current: () => token === routing,
    navigate: (h) => { location.hash = h; } };
  try {
    const mounted = await mount(root, ctx, arg ? decodeURIComponent(arg) : undefined);
    if (token !== routing) { mounted?.unmount?.(); return; } // the user moved on meanwhile
    view = mounted;
  } catch (err) {
    if (token !== routing) return;
    const p = document.createElement("p");
    p.className = "error"; p.setAttribute("role", "alert");
    p.textContent = err instanceof ApiError ? err.message : `Cannot show this view: ${err.message}`;
    root.replaceChildren(p);
  }
}

function onEvent(event) {
  if (!early) store.onEvent(event);
  else if (early.length < 10000) early.push(event);
  view?.onEvent?.(event);
}

$("#login").addEventListener("submit", (e) => {
  e.preventDefault();
  login($("#api-key").value.trim());
});
$("#logout").addEventListener("click", () => {
  localStorage.removeItem(KEY_STORAGE);
  live?.stop();
  location.hash = "#/";
  location.reload();
});
window.addEventListener("hashchange", () => route());

// A key in the URL (#key=..., as `spc demo` prints it) is taken once and removed from the
// address bar, so it does not stay in the history or on screen.
const fromHash = new URLSearchParams(location.hash.slice(1)).get("key");
if (fromHash) history.replaceState(null, "", location.pathname + location.search + "#/");
const saved = fromHash || localStorage.getItem(KEY_STORAGE);
if (saved) login(saved); else show($("#login"), true);
