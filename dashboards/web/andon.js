// Andon: a full-screen grid for a line monitor, readable from 5 m, the worst tiles first.
import { Store } from "./store.js";
import { createTile, updateTile } from "./tiles.js";
import { el } from "./layout.js";

export function mountAndon(root, ctx, line) {
  const { store, navigate } = ctx;
  const lines = store.hierarchy.flatMap((s) => s.lines);
  const chosen = lines.find((l) => l.key === line);
  const keys = chosen ? chosen.stations.flatMap((s) => s.characteristics)
    : [...store.characteristics.keys()];
  const grid = el("div", { class: "andon-grid", id: "andon-grid" });
  const picker = el("select", { "aria-label": "line", onchange: (e) => navigate(`#/andon/${e.target.value}`) },
    el("option", { value: "", text: "all lines" }),
    ...lines.map((l) => el("option", { value: l.key, text: l.name, selected: l.key === line })));
  const full = el("button", { text: "Full screen", onclick: () => document.documentElement.requestFullscreen?.() });
  const clock = el("span", { class: "andon-clock" });
  root.replaceChildren(el("section", { id: "andon-view" },
    el("div", { class: "andon-bar" }, el("h2", { text: chosen ? chosen.name : "All lines" }), clock, picker, full),
    grid));
  const tiles = new Map();
  for (const key of keys.filter((k) => store.characteristics.has(k))) {
    const t = createTile(key, (k) => navigate(`#/chart/${encodeURIComponent(k)}`));
    tiles.set(key, t);
    updateTile(t, store);
  }
  // Red first, then acknowledged, stale, baseline, green; by name within a status.
  const order = () => {
    const sorted = [...tiles.values()].sort((a, b) =>
      Store.rank(a.dataset.status) - Store.rank(b.dataset.status)
      || a.querySelector(".tile-name").textContent.localeCompare(b.querySelector(".tile-name").textContent));
    if (sorted.some((t, i) => grid.children[i] !== t)) grid.replaceChildren(...sorted);
  };
  order();
  const tick = () => { clock.textContent = new Date().toLocaleTimeString(); };
  tick();
  let inner = null;
  const unsubscribe = store.subscribe((key) => {
    if (key === "*") { unsubscribe(); clearInterval(timer); inner = mountAndon(root, ctx, line); return; }
    if (tiles.has(key)) { updateTile(tiles.get(key), store); order(); }
  });
  const timer = setInterval(() => { tick(); tiles.forEach((t) => updateTile(t, store)); order(); }, 5000);
  const releaseCpk = store.wantCpk();
  return { unmount() { unsubscribe(); clearInterval(timer); releaseCpk(); inner?.unmount(); } };
}
