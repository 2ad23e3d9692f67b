// One characteristic as a tile (overview and andon): status colour, last value, Cpk, alarms.
// A tile is a button, so it is focusable and opens the chart on click or touch.
import { STATUS_TEXT } from "./store.js";

export function fmt(v, digits = 5) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  const n = Number(v);
  return Math.abs(n) >= 1e5 || (Math.abs(n) < 1e-3 && n !== 0) ? n.toExponential(3)
    : String(Number(n.toPrecision(digits)));
}

function ago(ms) {
  if (ms === null) return "no data yet";
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 129600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

export function createTile(key, onOpen) {
  const b = document.createElement("button");
  b.className = "tile";
  b.dataset.key = key;
  b.innerHTML = `<span class="tile-name"></span><span class="tile-status"></span>
    <span class="tile-value" data-field="last"></span>
    <span class="tile-meta"><span data-field="cpk"></span><span data-field="alarms"></span>
    <span data-field="age"></span></span>`;
  b.addEventListener("click", () => onOpen(key));
  return b;
}

export function updateTile(tile, store) {
  const key = tile.dataset.key;
  const c = store.characteristics.get(key);
  const st = store.entry(key);
  const status = store.status(key);
  const alarms = store.alarmsOf(key);
  const open = alarms.filter((a) => a.state === "open").length;
  tile.dataset.status = status;
  tile.querySelector(".tile-name").textContent = c.name;
  tile.querySelector(".tile-status").textContent = STATUS_TEXT[status];
  const value = tile.querySelector("[data-field=last]");
  value.textContent = fmt(st.last);
  if (c.unit) {
    const unit = document.createElement("small");
    unit.textContent = ` ${c.unit}`;
    value.append(unit);
  }
  tile.querySelector("[data-field=cpk]").textContent =
    st.cpk !== null && st.cpk !== undefined ? `Cpk ${fmt(st.cpk, 3)}` : store.hasSpecs(c) ? "Cpk –" : "";
  tile.querySelector("[data-field=alarms]").textContent =
    open ? `${open} open alarm${open > 1 ? "s" : ""}`
      : alarms.length ? `${alarms.length} acknowledged` : "no alarms";
  tile.querySelector("[data-field=age]").textContent = ago(st.seenAt);
  tile.setAttribute("aria-label", `${c.name}: ${STATUS_TEXT[status]}, last value ${fmt(st.last)}`
    + `${c.unit ? " " + c.unit : ""}, ${tile.querySelector("[data-field=alarms]").textContent}`);
}
