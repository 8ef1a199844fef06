// The supervisor screen's review list (docs/pledges.md, Review): pledges above the
// campaign's review amount (GET /pledges?flagged=true), each approved with a note
// (POST /pledges/{ref}/approve), its amount corrected (PATCH /pledges/{ref}) or
// cancelled with a reason (POST /pledges/{ref}/cancel); every step is audited by the
// server. Reloaded when a pledge of the campaign is saved or changes
// (supervisor.js re-dispatches the socket's messages as `pledgeline:message`).

import { api, setText, whoAmI } from "/static/common.js";
import { formatDateTime, formatMoney, N_, parseAmount, t } from "/static/i18n.js";

const $ = (id) => document.getElementById(id);
const REASONS = [
  ["fake", N_("fake")],
  ["duplicate", N_("duplicate")],
  ["bad_contact", N_("bad contact details")],
  ["donor_request", N_("the donor's request")],
  ["abandoned", N_("abandoned")],
];
let me = null;
let loading = null;
const listed = new Set(); // references on the list now

function status(text, isError = false) {
  const line = $("review-status");
  line.classList.toggle("error", isError);
  setText(line, text);
}

async function act(path, method, body, done) {
  const r = await api(path, { method, body, csrf: me.csrf_token });
  if (!r.ok) {
    status((r.data && r.data.message) || t("Refused ({status}).", { status: r.status }), true);
    return;
  }
  status(done(r.data));
  await load();
}

function field(label, input) {
  const wrap = document.createElement("label");
  wrap.className = "review-field";
  wrap.append(document.createTextNode(label), input);
  return wrap;
}

function actions(pledge) {
  const ref = pledge.reference;
  const box = document.createElement("div");
  box.className = "review-actions";
  const note = document.createElement("input");
  note.type = "text";
  note.maxLength = 500;
  note.autocomplete = "off";
  const approve = document.createElement("button");
  approve.type = "button";
  approve.className = "small";
  approve.textContent = t("Approve");
  approve.addEventListener("click", () =>
    act(`/pledges/${encodeURIComponent(ref)}/approve`, "POST", { note: note.value.trim() || null }, () =>
      t("{reference} approved.", { reference: ref }),
    ),
  );
  const amount = document.createElement("input");
  amount.type = "text";
  amount.inputMode = "decimal";
  amount.size = 8;
  const correct = document.createElement("button");
  correct.type = "button";
  correct.className = "secondary small";
  correct.textContent = t("Correct");
  correct.addEventListener("click", () => {
    const minor = parseAmount(amount.value);
    if (!minor) {
      status(t("Type the right amount, such as 800 or 800,50."), true);
      amount.focus();
      return;
    }
    act(`/pledges/${encodeURIComponent(ref)}`, "PATCH", { amount_minor: minor }, (p) =>
      t("{reference} corrected to {amount}.", {
        reference: ref,
        amount: formatMoney(p.amount_minor, p.currency),
      }),
    );
  });
  const reason = document.createElement("select");
  for (const [value, label] of REASONS) reason.append(new Option(t(label), value));
  const cancel = document.createElement("button");
  cancel.type = "button";
  cancel.className = "secondary small";
  cancel.textContent = t("Cancel the pledge");
  cancel.addEventListener("click", () =>
    act(`/pledges/${encodeURIComponent(ref)}/cancel`, "POST", { reason: reason.value }, () =>
      t("{reference} cancelled.", { reference: ref }),
    ),
  );
  box.append(
    field(t("Note"), note),
    approve,
    field(t("Right amount"), amount),
    correct,
    field(t("Reason"), reason),
    cancel,
  );
  return box;
}

function row(pledge) {
  const tr = document.createElement("tr");
  tr.dataset.reference = pledge.reference;
  const ref = document.createElement("th");
  ref.scope = "row";
  ref.textContent = pledge.reference;
  const cells = [
    formatDateTime(pledge.created_at),
    [pledge.first_name, pledge.last_name].filter(Boolean).join(" "),
    formatMoney(pledge.amount_minor, pledge.currency),
  ].map((text) => {
    const td = document.createElement("td");
    td.textContent = text;
    return td;
  });
  const review = document.createElement("td");
  review.append(actions(pledge));
  tr.append(ref, ...cells, review);
  return tr;
}

async function load() {
  if (loading) return loading;
  loading = (async () => {
    const params = new URLSearchParams({ flagged: "true", limit: "200" });
    if (me.campaign_id) params.set("campaign_id", String(me.campaign_id));
    const r = await api(`/pledges?${params}`);
    if (!r.ok) return;
    const waiting = r.data.filter((p) => p.status !== "cancelled");
    listed.clear();
    for (const p of waiting) listed.add(p.reference);
    $("review-table").tBodies[0].replaceChildren(...waiting.map(row));
    $("no-review").hidden = waiting.length > 0;
    $("review-card").dataset.loaded = "true";
  })();
  try {
    await loading;
  } finally {
    loading = null;
  }
}

// Reload only for what changes the list: a new flagged pledge, or a listed one or one
// whose flag moved. Every pledge of the campaign passes here: at a studio's burst,
// reloading for each would cost a query per pledge per supervisor screen.
function touchesList(msg) {
  const d = msg.data || {};
  if (msg.type === "pledge.saved") return d.flagged_for_review === true;
  if (msg.type === "pledge.updated") {
    return listed.has(d.reference) || (d.fields || []).includes("amount_minor");
  }
  return msg.type === "pledge.status" && listed.has(d.reference);
}

document.addEventListener("pledgeline:message", (event) => {
  if (me && touchesList(event.detail)) load();
});

async function main() {
  me = await whoAmI().catch(() => null);
  if (!me || (me.role !== "supervisor" && me.role !== "admin")) return;
  $("review-card").hidden = false;
  await load();
}

main();
