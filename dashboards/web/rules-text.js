// Rule ids as the server reports them ("we1", "nelson3", "nelson2:7", "mr:nelson1",
// "cusum_upper") turned into a short marker label and a sentence an operator understands.

const TEXT = {
  we1: "1 point beyond 3σ (outside the control limits)",
  we2: "2 of 3 points in a row beyond 2σ on the same side",
  we3: "4 of 5 points in a row beyond 1σ on the same side",
  we4: "8 points in a row on the same side of the centre line",
  nelson1: "1 point beyond 3σ (outside the control limits)",
  nelson2: "9 points in a row on the same side of the centre line",
  nelson3: "6 points in a row steadily increasing or decreasing",
  nelson4: "14 points in a row alternating up and down",
  nelson5: "2 of 3 points in a row beyond 2σ on the same side",
  nelson6: "4 of 5 points in a row beyond 1σ on the same side",
  nelson7: "15 points in a row within 1σ of the centre line (too little variation)",
  nelson8: "8 points in a row beyond 1σ, on either side",
  aiag1: "1 point outside the control limits",
  aiag2: "7 points in a row on the same side of the centre line",
  aiag3: "7 points in a row steadily increasing or decreasing",
  cusum_upper: "upper CUSUM beyond the decision interval: the mean has shifted up",
  cusum_lower: "lower CUSUM beyond the decision interval: the mean has shifted down",
  agent_silent: "edge agent silent: no heartbeat",
  source_down: "data source disconnected",
};

// Variants "id:K" change one number of the rule (Minitab's K).
const VARIANT = {
  nelson1: (k) => `1 point beyond ${k}σ`, we1: (k) => `1 point beyond ${k}σ`,
  nelson2: (k) => `${k} points in a row on the same side of the centre line`,
  we4: (k) => `${k} points in a row on the same side of the centre line`,
  nelson3: (k) => `${k} points in a row steadily increasing or decreasing`,
  nelson4: (k) => `${k} points in a row alternating up and down`,
  nelson5: (k) => `${k} of ${Number(k) + 1} points in a row beyond 2σ on the same side`,
  nelson6: (k) => `${k} of ${Number(k) + 1} points in a row beyond 1σ on the same side`,
  nelson7: (k) => `${k} points in a row within 1σ of the centre line`,
  nelson8: (k) => `${k} points in a row beyond 1σ, on either side`,
};

const CHART = { mr: "Moving range", r: "Range", s: "Standard deviation", i: "Individuals",
  xbar: "Subgroup means" };

// Splits "mr:nelson1" / "nelson2:7" into {chart, id, k}.
export function parseRule(rule) {
  const parts = String(rule).split(":");
  const chart = CHART[parts[0]] ? parts.shift() : null;
  return { chart, id: parts[0], k: parts[1] ?? null };
}

export function ruleText(rule) {
  const { chart, id, k } = parseRule(rule);
  const base = k !== null && VARIANT[id] ? VARIANT[id](k) : TEXT[id] || `rule ${id}`;
  return chart ? `${CHART[chart]} chart: ${base}` : base;
}

// The marker label: the rule's number ("1", "5"), "C+"/"C−" for CUSUM, prefixed for the
// companion chart ("MR1").
export function ruleLabel(rule) {
  const { chart, id } = parseRule(rule);
  const short = id === "cusum_upper" ? "C+" : id === "cusum_lower" ? "C−"
    : (id.match(/(\d+)$/) || [null, id])[1];
  return chart ? `${chart.toUpperCase()}${short}` : short;
}
