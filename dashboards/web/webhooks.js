// Webhooks (admin): the MES subscriptions, subscribing a URL (its signing secret is shown once),
// a signed test event, and the deliveries with their errors; dead letters can be re-sent.
import { ApiError } from "./api.js";
import { confirmAction, el, needsRole, secretOnce, when } from "./layout.js";

const EVENTS = [["alarm.opened", "alarm opened"], ["alarm.acknowledged", "alarm acknowledged"],
  ["alarm.closed", "alarm closed"]];
const POLL_MS = 1000; // while deliveries are pending, their state is re-read this often

export async function mountWebhooks(root, ctx) {
  const { api } = ctx;
  if (!api.can("admin")) {
    root.replaceChildren(needsRole("webhooks-view", "Webhooks", "admin", "Managing webhooks"));
    return {};
  }
  const url = el("input", { id: "hook-url", name: "url", required: true, size: 44, maxlength: 2000,
    inputmode: "url", autocomplete: "off", placeholder: "https://mes.example.com/spc/events" });
  const events = EVENTS.map(([v, t], i) => el("input", { type: "checkbox", name: "events", value: v,
    checked: i === 0, "data-event": v }));
  const secret = el("input", { id: "hook-secret", name: "secret", size: 30, minlength: 24, maxlength: 200,
    autocomplete: "off", placeholder: "empty: the server makes one" });
  const error = el("p", { class: "error", role: "alert", id: "hook-error" });
  const submit = el("button", { type: "submit", id: "create-hook", text: "Subscribe" });
  const form = el("form", { id: "hook-form", class: "limits-form", "aria-label": "new webhook" },
    el("label", {}, "URL (http or https)", url),
    el("fieldset", { class: "events" }, el("legend", { text: "Events" }),
      ...events.map((box, i) => el("label", { class: "toggle" }, box, EVENTS[i][1]))),
    el("label", {}, "Signing secret (optional)", secret), submit);
  const fresh = el("div", { id: "new-secret-box" });
  const status = el("p", { id: "hook-status", role: "status", class: "muted" });
  const subs = el("tbody");
  const subTable = el("table", { id: "hooks-table" }, el("caption", { text: "Subscriptions" }),
    el("thead", {}, el("tr", {}, ...["#", "URL", "events", "enabled", ""].map((t) => el("th", { text: t })))),
    subs);
  const stateFilter = el("select", { id: "delivery-state", "aria-label": "delivery state" },
    ...[["", "all"], ["pending", "pending"], ["delivered", "delivered"], ["dead", "dead letters"]]
      .map(([v, t]) => el("option", { value: v, text: t })));
  const dels = el("tbody");
  const delTable = el("table", { id: "deliveries-table" },
    el("caption", { text: "Deliveries, newest first (the last 100)" }),
    el("thead", {}, el("tr", {}, ...["#", "event", "type", "to", "state", "attempts", "last error",
      "created", "delivered", ""].map((t) => el("th", { text: t })))), dels);
  const delError = el("p", { class: "error", role: "alert", id: "delivery-error" });
  root.replaceChildren(el("section", { id: "webhooks-view" }, el("h2", { text: "Webhooks" }),
    el("p", { class: "muted", text: "Each event is POSTed with the Standard Webhooks headers (webhook-id, "
      + "webhook-timestamp, webhook-signature: HMAC-SHA256 with the subscription's secret), retried with "
      + "backoff, and left as a dead letter after the last attempt." }),
    form, error, fresh, status, subTable,
    el("div", { class: "toolbar" }, el("h3", { text: "Deliveries" }),
      el("label", { class: "toggle" }, "show", stateFilter),
      el("button", { class: "secondary", id: "refresh-deliveries", text: "Refresh", onclick: () => refresh() })),
    delError, delTable));

  let hooks = [];
  let timer = null;
  let alive = true;

  async function refresh() {
    clearTimeout(timer);
    try {
      const [h, d] = await Promise.all([api.get("/webhooks"),
        api.get("/webhooks/deliveries", { state: stateFilter.value, limit: 100 })]);
      if (!alive) return;
      hooks = h;
      delError.textContent = "";
      renderSubs();
      renderDeliveries(d);
      // keep following deliveries in flight until they are delivered or dead
      if (d.some((x) => x.state === "pending")) timer = setTimeout(refresh, POLL_MS);
    } catch (err) {
      if (alive) delError.textContent = `Cannot read the webhooks: ${err.message}`;
    }
  }

  function renderSubs() {
    subs.replaceChildren(...hooks.map((h) => el("tr", { "data-hook": h.id },
      el("td", { text: String(h.id) }), el("td", {}, el("code", { text: h.url })),
      el("td", { text: h.events.join(", ") }), el("td", { text: h.enabled ? "yes" : "no" }),
      el("td", { class: "actions" },
        el("button", { text: "Send test", "data-test": h.id, onclick: () => sendTest(h) }),
        el("button", { class: "secondary", text: "Delete", "data-delete": h.id, onclick: () => remove(h) })))));
  }

  function renderDeliveries(list) {
    const to = (id) => hooks.find((h) => h.id === id)?.url ?? `#${id}`;
    dels.replaceChildren(...list.map((d) => el("tr", { "data-delivery": d.id, "data-state": d.state,
      "data-type": d.event_type },
    el("td", { text: String(d.id) }), el("td", {}, el("code", { text: d.event_id })),
    el("td", { text: d.event_type }), el("td", { text: to(d.subscription_id) }),
    el("td", { text: d.state === "dead" ? "dead letter" : d.state, "data-field": "state" }),
    el("td", { text: String(d.attempts) }),
    el("td", { class: "error-text", text: d.last_error || "", "data-field": "error" }),
    el("td", { text: when(d.created_at) }), el("td", { text: when(d.delivered_at) }),
    el("td", { class: "actions" }, d.state === "dead"
      ? el("button", { text: "Resend", "data-resend": d.id, onclick: () => resend(d) }) : null))));
  }

  async function sendTest(h) {
    status.textContent = "";
    try {
      const r = await api.post(`/webhooks/${h.id}/test`);
      status.textContent = `Test event ${r.event_id} queued for ${h.url} (delivery #${r.queued}).`;
    } catch (err) {
      status.textContent = "";
      delError.textContent = `Cannot send a test to ${h.url}: ${err.message}`;
    }
    await refresh();
  }

  async function resend(d) {
    try {
      await api.post(`/webhooks/deliveries/${d.id}/resend`);
      status.textContent = `Delivery #${d.id} queued again (attempts start from zero).`;
    } catch (err) {
      delError.textContent = `Cannot resend delivery #${d.id}: ${err.message}`;
    }
    await refresh();
  }

  async function remove(h) {
    const done = await confirmAction({
      id: "delete-hook-dialog", title: `Delete the subscription of ${h.url}?`, confirm: "Delete",
      danger: true, text: "No more events are sent there, and its deliveries (including dead letters) "
        + "are deleted with it.",
      action: () => api.delete(`/webhooks/${h.id}`),
    });
    if (done) { status.textContent = `Subscription #${h.id} deleted.`; await refresh(); }
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.textContent = "";
    fresh.replaceChildren();
    const chosen = events.filter((b) => b.checked).map((b) => b.value);
    if (!chosen.length) { error.textContent = "Choose at least one event."; return; }
    submit.disabled = true;
    try {
      // the server checks the URL (scheme, host, port, allow-list): its words are shown as they are
      const h = await api.post("/webhooks", { url: url.value.trim(), events: chosen,
        ...(secret.value ? { secret: secret.value } : {}) });
      fresh.replaceChildren(secretOnce({ id: "new-secret", title: `Signing secret of subscription #${h.id}`,
        secret: h.secret, note: "Give it to the receiver to verify the webhook-signature header; "
          + "it is not shown again." }));
      form.reset();
      await refresh();
    } catch (err) {
      error.textContent = err instanceof ApiError ? err.message : `Cannot subscribe: ${err.message}`;
    } finally {
      submit.disabled = false;
    }
  });
  stateFilter.addEventListener("change", () => refresh());

  await refresh();
  return { unmount() { alive = false; clearTimeout(timer); } };
}
