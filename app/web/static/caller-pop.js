// Caller details (CTI screen pop) on the volunteer screen: who is probably calling,
// where each detail came from, and the caller's history with the hotline.
//
// The pop arrives with the offer (`call.offered` data.screen_pop) when the look-up
// finished first, later as `call.cti_ready`, or in the snapshot after a reconnection.
// Each arrival is shared on the bus as `pop` {call_id, pop} for the pledge form.
// When the call is over (no call on screen, or transferred) the details are cleared.
// Texts through the catalogue (i18n.js): the pop's own English `note` is not shown,
// the panel says the same from the pop's status and history.

import { bus, publish, screen } from "/static/agent-bus.js";
import { N_, formatMoney, t } from "/static/i18n.js";

const panel = document.getElementById("caller-details");

const SOURCE_LABELS = {
  directory: N_("from phone directory"),
  pledges: N_("from earlier pledge"),
  caller_id: N_("from caller ID"),
};

const FIELD_ROWS = [
  [N_("Name"), (f) => [f.first_name.value, f.last_name.value].filter(Boolean).join(" "), "first_name"],
  [N_("Address"), (f) => (f.address_lines.value || []).join(", "), "address_lines"],
  [N_("Postcode"), (f) => f.postcode.value, "postcode"],
  [N_("City"), (f) => f.city.value, "city"],
  [N_("Email"), (f) => f.email.value, "email"],
  [N_("Phone"), (f) => f.phone.display || f.phone.value, "phone"],
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
    return formatMoney(minor, currency);
  } catch {
    return `${(minor / 100).toFixed(2)} ${currency}`;
  }
}

function day(iso) {
  const lang = document.documentElement.lang || "fr";
  return iso ? new Date(iso).toLocaleDateString(lang === "en" ? "en-GB" : "fr-FR") : "";
}

function placeholder(text) {
  delete panel.dataset.status;
  panel.replaceChildren(
    el("h3", { text: t("Caller details"), attrs: { id: "caller-details-title" } }),
    el("p", { text, className: "placeholder" }),
  );
}

/** What the panel says first: how far to trust the details (from the pop's status). */
function note(pop) {
  const status = pop.status;
  if (status === "skipped_withheld") return t("Number withheld: ask for the caller's details.");
  if (status === "skipped_invalid") return t("Number not recognised: ask for the caller's details.");
  const parts = [];
  if (pop.returning_donor) {
    const f = pop.fields || {};
    const name = [f.first_name && f.first_name.value, f.last_name && f.last_name.value]
      .filter(Boolean)
      .join(" ");
    parts.push(
      name
        ? t("Returning donor: check you are speaking to {name}.", { name })
        : t("Returning donor: check who you are speaking to."),
    );
  } else if (status === "found") {
    parts.push(t("Details from the phone directory: confirm them with the caller."));
  } else if (status === "not_found") {
    parts.push(t("Number not in the directory: ask for the caller's details."));
  } else if (status === "timeout" || status === "error" || status === "breaker_open") {
    parts.push(t("Directory unavailable: ask for the caller's details."));
  } else {
    parts.push(t("Ask for the caller's details."));
  }
  return parts.join(" "); // the history follows on its own line
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
    dd.append(el("span", { text: t("to confirm"), className: "badge confirm-badge" }));
    if (source) {
      const from = SOURCE_LABELS[source] ? t(SOURCE_LABELS[source]) : t("from {source}", { source });
      dd.append(el("span", { text: from, className: "pop-source" }));
    }
    list.append(el("dt", { text: t(label) }), dd);
  }
  return list;
}

function historyLine(history) {
  const parts = [];
  if (history.pledges) {
    const p = history.pledges;
    const total = money(p.total_minor, p.currency);
    parts.push(
      p.last_pledge_at
        ? t("Earlier pledges: {count}, {total} in all, last on {day}", {
            count: p.count,
            total,
            day: day(p.last_pledge_at),
          })
        : t("Earlier pledges: {count}, {total} in all", { count: p.count, total }),
    );
  }
  if (history.earlier_calls) {
    const count = history.earlier_calls;
    parts.push(
      history.last_call_at
        ? t("Earlier calls: {count}, last on {day}", { count, day: day(history.last_call_at) })
        : t("Earlier calls: {count}", { count }),
    );
  }
  return parts.join(" · ");
}

function render(pop) {
  const nodes = [el("h3", { text: t("Caller details"), attrs: { id: "caller-details-title" } })];
  nodes.push(el("p", { text: note(pop), className: "pop-note", attrs: { "data-status": pop.status } }));
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
    placeholder(t("Looking the caller up…"));
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

// The call is over for this screen (wrap-up ended or timed out, or transferred):
// no personal data stays on it.
bus.addEventListener("call", ({ detail }) => {
  if (!detail.call || detail.call.state === "transferred") {
    shown = { callId: null, pop: null };
    placeholder(t("Caller details appear here."));
  }
});

bus.addEventListener("ready", () => {
  if (!shown.callId) placeholder(t("Caller details appear here."));
});
