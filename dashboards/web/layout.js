// The header shared by the per-characteristic views: name, status and the tabs between them.
export function characteristicHeader(c, active, api) {
  const head = document.createElement("div");
  head.className = "char-head";
  const h = document.createElement("h2");
  h.id = "chart-title";
  h.textContent = `${c.name} (${c.key})`;
  const tabs = document.createElement("nav");
  tabs.className = "tabs";
  tabs.setAttribute("aria-label", "characteristic views");
  const items = [["chart", "Control chart"], ["capability", "Capability"]];
  if (api.can("engineer")) items.push(["limits", "Limits"]);
  for (const [route, label] of items) {
    const a = document.createElement("a");
    a.href = `#/${route}/${encodeURIComponent(c.key)}`;
    a.textContent = label;
    a.dataset.tab = route;
    if (route === active) a.setAttribute("aria-current", "page");
    tabs.append(a);
  }
  head.append(h, tabs);
  return head;
}

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== false && v !== null && v !== undefined) e.setAttribute(k, v === true ? "" : v);
  }
  e.append(...children.filter((x) => x !== null && x !== undefined));
  return e;
}
