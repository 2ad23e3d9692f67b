// API keys (admin): the active keys, creating one (the plain key is shown once, here), revoking
// one. The server stores only a prefix and a hash, so a lost key is revoked and replaced.
import { ApiError } from "./api.js";
import { confirmAction, el, needsRole, secretOnce, when } from "./layout.js";

const ROLES = [
  ["operator", "operator: read charts, acknowledge alarms"],
  ["engineer", "engineer: + characteristics, limits, audit trail"],
  ["admin", "admin: + API keys, webhooks"],
  ["agent", "agent: upload samples only (an edge agent)"],
];

export async function mountKeys(root, ctx) {
  const { api } = ctx;
  if (!api.can("admin")) {
    root.replaceChildren(needsRole("keys-view", "API keys", "admin", "Managing API keys"));
    return {};
  }
  const lines = (await api.get("/hierarchy")).flatMap((s) => s.lines.map((l) => ({ ...l, site: s.name })));
  const role = el("select", { id: "key-role", name: "role", required: true },
    ...ROLES.map(([v, t]) => el("option", { value: v, text: t })));
  const name = el("input", { id: "key-name", name: "name", maxlength: 200, size: 28,
    placeholder: "who or what uses it, e.g. Line 1 panel PC" });
  const scope = el("select", { id: "key-scope", name: "scope" },
    el("option", { value: "", text: "any line" }),
    ...lines.map((l) => el("option", { value: l.key, text: `${l.site} / ${l.name} (${l.key})` })));
  const scopeField = el("label", { hidden: true }, "Agent may write line", scope);
  role.addEventListener("change", () => { scopeField.hidden = role.value !== "agent"; });
  const error = el("p", { class: "error", role: "alert", id: "key-error" });
  const submit = el("button", { type: "submit", id: "create-key", text: "Create key" });
  const form = el("form", { id: "key-form", class: "limits-form", "aria-label": "new API key" },
    el("label", {}, "Role", role), el("label", {}, "Name", name), scopeField, submit);
  const fresh = el("div", { id: "new-key-box" });
  const body = el("tbody");
  const table = el("table", { id: "keys-table" }, el("caption", { text: "Active keys" }),
    el("thead", {}, el("tr", {}, ...["#", "prefix", "role", "name", "line", "created", ""]
      .map((t) => el("th", { text: t })))), body);
  root.replaceChildren(el("section", { id: "keys-view" }, el("h2", { text: "API keys" }),
    el("p", { class: "muted", text: "A key is shown once, when it is created; the server keeps only "
      + "its hash. Revoking a key ends its access at once, including open dashboards and live streams." }),
    form, error, fresh, table));

  async function refresh() {
    const keys = await api.get("/keys");
    body.replaceChildren(...keys.map((k) => {
      const mine = k.prefix === api.prefix;
      const revoke = el("button", { class: "secondary", text: "Revoke", "data-revoke": k.id,
        onclick: () => revokeKey(k, mine) });
      return el("tr", { "data-key-id": k.id, "data-role": k.role, "data-mine": mine ? "true" : null },
        el("td", { text: String(k.id) }), el("td", {}, el("code", { text: k.prefix })),
        el("td", { text: k.role }),
        el("td", { text: k.name }, mine ? el("span", { class: "badge", text: "this session" }) : null),
        el("td", { text: k.scope || "" }), el("td", { text: when(k.created_at) }),
        el("td", { class: "actions" }, revoke));
    }));
  }

  async function revokeKey(k, mine) {
    const label = `key #${k.id} (${k.role}${k.name ? `, ${k.name}` : ""}, prefix ${k.prefix})`;
    const done = await confirmAction({
      id: "revoke-dialog", title: `Revoke ${label}?`, confirm: "Revoke", danger: true,
      text: mine ? "This is the key you are logged in with: you will be logged out at once."
        : k.role === "agent" ? "An agent using it can no longer upload; its samples wait in its buffer."
          : "Whoever uses it is refused from now on, and their open dashboards stop updating.",
      action: () => api.delete(`/keys/${k.id}`),
    });
    if (!done) return;
    if (mine) { document.getElementById("logout").click(); return; }
    await refresh();
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.textContent = "";
    fresh.replaceChildren();
    submit.disabled = true;
    try {
      const body = { role: role.value, name: name.value.trim(),
        scope: role.value === "agent" && scope.value ? scope.value : null };
      const k = await api.post("/keys", body);
      fresh.replaceChildren(secretOnce({ id: "new-key", title: `New ${k.role} key #${k.id}`,
        secret: k.key, note: "Copy it now and give it to its user: it is not shown again, "
          + "here or anywhere else." }));
      form.reset();
      scopeField.hidden = true;
      await refresh();
    } catch (err) {
      error.textContent = err instanceof ApiError ? err.message : `Cannot create the key: ${err.message}`;
    } finally {
      submit.disabled = false;
    }
  });

  await refresh();
  return {};
}
