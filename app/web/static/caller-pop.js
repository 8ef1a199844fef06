// Caller details (CTI screen pop) on the volunteer screen: who is probably calling,
// where each detail came from, and the caller's history with the hotline.
//
// The pop arrives with the offer (`call.offered` data.screen_pop) when the look-up
// finished first, later as `call.cti_ready`, or in the snapshot after a reconnection.
// Each arrival is shared on the bus as `pop` {call_id, pop} for the pledge form.

import { bus, publish, screen } from "/static/agent-bus.js";

const panel = document.getElementById("caller-details");

const SOURCE_LABELS = {
  directory: "phone directory",
  pledges: "earlier pledge",
  caller_id: "caller ID",
};

const FIELD_ROWS = [
  ["Name", (f) => [f.first_name.value, f.last_name.value].filter(Boolean).join(" "), "first_name"],
  ["Address", (f) => (f.address_lines.value || []).join(", "), "address_lines"],
  ["Postcode", (f) => f.postcode.value, "postcode"],
  ["City", (f) => f.city.value, "city"],
  ["Email", (f) => f.email.value, "email"],
  ["Phone", (f) => f.phone.display || f.phone.value, "phone"],
];

// The pop of the call on screen, kept so that a late `call.offered` replay does not
// wipe a pop that already came as `call.cti_ready`.
let shown = { callId: null, pop: null };

function el(tag, { text, className, attrs } = {}) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  return node;
}

function money(minor, currency) {
  try {
    return new Intl.NumberFormat("fr-FR", { style: "currency", currency }).format(minor / 100);
  } catch {
    return `${(minor / 100).toFixed(2)} ${currency}`;
  }
}

function day(iso) {
  return iso ? new Date(iso).toLocaleDateString("fr-FR") : "";
}

function placeholder(text) {
  panel.replaceChildren(
    el("h3", { text: "Caller details", attrs: { id: "caller-details-title" } }),
    el("p", { text, className: "placeholder" }),
  );
}

function detailsList(fields) {
  const list = el("dl", { className: "facts pop-fields" });
  for (const [label, read, key] of FIELD_ROWS) {
    const value = read(fields);
    if (!value) continue;
    const source = fields[key].source;
    const dd = el("dd", { attrs: { "data-field": key } });
    dd.append(el("span", { text: value, className: "pop-value" }));
    // Every pre-filled detail is checked with the caller before it is used.
    dd.append(el("span", { text: "to confirm", className: "badge confirm-badge" }));
    if (source) dd.append(el("span", { text: `from ${SOURCE_LABELS[source] || source}`, className: "pop-source" }));
    list.append(el("dt", { text: label }), dd);
  }
  return list;
}

function historyLine(history) {
  const parts = [];
  if (history.pledges) {
    const p = history.pledges;
    parts.push(
      `${p.count} earlier pledge${p.count === 1 ? "" : "s"}, ${money(p.total_minor, p.currency)} in all` +
        (p.last_pledge_at ? `, last on ${day(p.last_pledge_at)}` : ""),
    );
  }
  if (history.earlier_calls) {
    parts.push(
      `${history.earlier_calls} earlier call${history.earlier_calls === 1 ? "" : "s"}` +
        (history.last_call_at ? `, last on ${day(history.last_call_at)}` : ""),
    );
  }
  return parts.join(" · ");
}

function render(pop) {
  const nodes = [el("h3", { text: "Caller details", attrs: { id: "caller-details-title" } })];
  nodes.push(el("p", { text: pop.note, className: "pop-note", attrs: { "data-status": pop.status } }));
  const list = detailsList(pop.fields || {});
  if (list.childElementCount) nodes.push(list);
  const history = historyLine(pop.history || {});
  if (history) nodes.push(el("p", { text: history, className: "pop-history" }));
  panel.replaceChildren(...nodes);
  panel.dataset.status = pop.status;
}

/** A pop for a withheld or unusable number, made here: no look-up runs for those. */
function emptyPop(issue) {
  const fields = {};
  for (const key of ["first_name", "last_name", "postcode", "city", "email", "phone"]) {
    fields[key] = { value: null, source: null, confirm: false };
  }
  fields.address_lines = { value: [], source: null, confirm: false };
  const withheld = issue === "withheld";
  return {
    caller: { number: null, display: null, issue },
    fields,
    history: { earlier_calls: 0, last_call_at: null, pledges: null },
    status: withheld ? "skipped_withheld" : "skipped_invalid",
    returning_donor: false,
    cached: false,
    note: withheld
      ? "Number withheld: ask for the caller's details."
      : "Caller number not recognised: ask for the caller's details.",
  };
}

function show(callId, pop) {
  shown = { callId, pop };
  render(pop);
  publish("pop", { call_id: callId, pop });
}

function onCall(callId, issue, pop) {
  if (pop) show(callId, pop);
  else if (issue) show(callId, emptyPop(issue));
  else if (shown.callId !== callId) {
    shown = { callId, pop: null };
    placeholder("Looking the caller up…");
  }
}

bus.addEventListener("message", ({ detail: msg }) => {
  const d = msg.data || {};
  switch (msg.type) {
    case "snapshot":
      if (d.call) onCall(d.call.id, d.call.caller_number_issue, d.call.screen_pop);
      break;
    case "call.offered":
      onCall(d.call_id, d.caller_issue, d.screen_pop || (shown.callId === d.call_id ? shown.pop : null));
      break;
    case "call.cti_ready":
      // Only the pop of the call on screen: a late one for an earlier call is old news.
      if (screen.call && screen.call.id === d.call_id) show(d.call_id, d);
      break;
    default:
      break;
  }
});

bus.addEventListener("call", ({ detail }) => {
  if (!detail.call) {
    shown = { callId: null, pop: null };
    placeholder("Caller details appear here.");
  }
});
