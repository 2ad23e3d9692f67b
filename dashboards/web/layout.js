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

// A modal form that runs `action` itself: on success it closes and resolves with the action's
// result; on failure the server's message stays in the dialog (nothing was applied, the user can
// correct, cancel or retry). Resolves null when cancelled.
export function modalForm({ id, title, body = [], submit, danger = false, focus = null, action }) {
  const error = el("p", { class: "error", role: "alert" });
  const cancel = el("button", { type: "button", class: "secondary", text: "Cancel" });
  const ok = el("button", { type: "submit", class: danger ? "danger" : null, text: submit });
  const form = el("form", { method: "dialog" },
    el("h2", { id: `${id}-title`, text: title }), ...body, error,
    el("div", { class: "actions" }, cancel, ok));
  const dialog = el("dialog", { id, "aria-labelledby": `${id}-title` }, form);
  document.body.append(dialog);
  dialog.showModal();
  (focus || cancel).focus();
  return new Promise((resolve) => {
    const done = (result) => { dialog.close(); dialog.remove(); resolve(result); };
    cancel.addEventListener("click", () => done(null));
    dialog.addEventListener("cancel", () => done(null));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      ok.disabled = true;
      error.textContent = "";
      try {
        const result = await action();
        done(result ?? true);
      } catch (err) {
        error.textContent = err.message || String(err);
        ok.disabled = false;
      }
    });
  });
}

// A confirmation (revoke, delete) as a modal form with one sentence of text.
export function confirmAction({ id, title, text, confirm, danger = false, action }) {
  return modalForm({ id, title, body: [el("p", { text })], submit: confirm, danger, action });
}

// Shown once: a secret the server will never show again (a new API key, a webhook secret).
export function secretOnce({ id, title, secret, note }) {
  const box = el("div", { class: "secret-once", id, role: "status" });
  const value = el("input", { readonly: true, value: secret, class: "secret-value",
    "aria-label": title, size: Math.min(Math.max(secret.length, 20), 64) });
  const copied = el("span", { class: "muted", "aria-live": "polite" });
  const copy = el("button", { type: "button", text: "Copy", onclick: async () => {
    value.select();
    try { await navigator.clipboard.writeText(secret); copied.textContent = "copied"; } catch {
      copied.textContent = "select the text and copy it (Ctrl+C)";
    }
  } });
  const dismiss = el("button", { type: "button", class: "secondary", text: "I have stored it",
    onclick: () => box.remove() });
  box.append(el("h3", { text: title }), el("p", { text: note }),
    el("div", { class: "secret-row" }, value, copy, dismiss, copied));
  return box;
}

// "Needs an <role> key": what a view shows a key without the role (the server refuses anyway).
export function needsRole(id, title, role, what) {
  return el("section", { id }, el("h2", { text: title }),
    el("p", { class: "verdict", text: `${what} needs an ${role} key.` }));
}

export const when = (ts) => (ts ? new Date(ts).toLocaleString() : "");
