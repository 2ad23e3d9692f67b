// The overview: site → line → station, each characteristic a live tile.
import { createTile, updateTile } from "./tiles.js";

export function mountOverview(root, ctx) {
  const { store, navigate } = ctx;
  root.innerHTML = `<div class="overview"><p class="chain-alarms" role="status" hidden></p></div>`;
  const container = root.firstElementChild;
  const tiles = new Map();
  const open = (key) => navigate(`#/chart/${encodeURIComponent(key)}`);
  const placed = new Set();

  const group = (tag, cls, title, parent) => {
    const el = document.createElement("section");
    el.className = cls;
    const h = document.createElement(tag);
    h.textContent = title;
    el.append(h);
    parent.append(el);
    return el;
  };
  const tileGrid = (keys, parent) => {
    const grid = document.createElement("div");
    grid.className = "tiles";
    for (const key of keys) {
      if (!store.characteristics.has(key)) continue;
      const t = createTile(key, open);
      tiles.set(key, t);
      placed.add(key);
      updateTile(t, store);
      grid.append(t);
    }
    parent.append(grid);
  };

  for (const site of store.hierarchy) {
    const s = group("h2", "site", site.name, container);
    for (const line of site.lines) {
      const l = group("h3", "line", line.name, s);
      l.dataset.line = line.key;
      for (const station of line.stations) {
        const st = group("h4", "station", station.name, l);
        tileGrid(station.characteristics, st);
      }
    }
  }
  const rest = [...store.characteristics.keys()].filter((k) => !placed.has(k));
  if (rest.length) {
    const u = group("h2", "site", store.hierarchy.length ? "Not assigned to a station" : "Characteristics", container);
    tileGrid(rest, u);
  }

  const chain = container.querySelector(".chain-alarms");
  const updateChain = () => {
    const n = [...store.alarms.values()].filter((a) => !a.characteristic && a.state === "open").length;
    chain.hidden = !n;
    chain.innerHTML = n ? `${n} data-collection alarm${n > 1 ? "s" : ""} (agent or source down) — <a href="#/alarms">see alarms</a>` : "";
  };
  updateChain();
  let inner = null;
  const unsubscribe = store.subscribe((key) => {
    if (key === "*") { // new characteristics: draw the tree again
      unsubscribe(); clearInterval(timer);
      inner = mountOverview(root, ctx);
      return;
    }
    if (key && tiles.has(key)) updateTile(tiles.get(key), store);
    if (!key) updateChain();
  });
  // Ages ("12 s ago") tick with the clock.
  const timer = setInterval(() => tiles.forEach((t) => updateTile(t, store)), 5000);
  const releaseCpk = store.wantCpk();
  return { unmount() { unsubscribe(); clearInterval(timer); releaseCpk(); inner?.unmount(); } };
}
