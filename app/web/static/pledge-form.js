// The pledge form on the volunteer screen (#pledge-form).
//
// Pre-filled from the screen pop (`pop` on the bus), each pre-filled field marked
// "to confirm" with its source; amount presets; inline messages from the server's
// 422 `field`; Enter saves. Each form has its own Idempotency-Key (a UUID), reused
// when a save is retried after a network error, so a double click or a retry never
// saves twice. After saving, the reference is shown large to read back to the caller,
// and the pledge can be corrected (PATCH) until the wrap-up ends. Never a card field.
// When the call is over (wrap-up ended or timed out, or the call transferred) the form
// is cleared: no personal data stays on an idle screen. Texts through i18n.js.

import { el } from "/static/common.js";
import { bus, screen } from "/static/agent-bus.js";
import { N_, formatMoney, t } from "/static/i18n.js";

const panel = document.getElementById("pledge-form");
const PRESETS = [10, 20, 50, 100];
const FIELDS = ["first_name", "last_name", "address", "postcode", "city", "country", "email", "phone", "amount", "note"];
const SOURCE_LABELS = {
  directory: N_("from phone directory"),
  pledges: N_("from earlier pledge"),
  caller_id: N_("from caller ID"),
};

const S = {
  callId: null,
  key: null, // Idempotency-Key of this form
  saved: null, // the pledge as the server returned it
  locked: false, // wrap-up over: no more corrections from this screen
  touched: new Set(), // fields the volunteer typed in (a late pop does not overwrite them)
  busy: false,
  lastPop: null, // {call_id, pop}: the pop may arrive just before the call does
};

function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function field(name, label, input, hint) {
  const id = `pf-${name}`;
  input.id = id;
  input.name = name;
  const error = el("span", { className: "error", id: `${id}-error`, role: "alert" });
  const described = [`${id}-error`];
  const parts = [el("label", { for: id, text: label })];
  const confirm = el("span", { className: "pf-confirm", id: `${id}-confirm`, hidden: true });
  described.push(confirm.id);
  if (hint) {
    parts.push(el("span", { className: "hint", id: `${id}-hint`, text: hint }));
    described.push(`${id}-hint`);
  }
  input.setAttribute("aria-describedby", described.join(" "));
  input.addEventListener("input", () => {
    S.touched.add(name);
    error.textContent = "";
    input.removeAttribute("aria-invalid");
    confirm.hidden = true;
  });
  return el("div", { className: `field pf-field pf-${name}` }, ...parts, input, confirm, error);
}

function text(name, label, attrs = {}, hint) {
  return field(name, label, el("input", { type: "text", autocomplete: "off", ...attrs }), hint);
}

function build() {
  const amount = el("input", {
    type: "text",
    inputmode: "decimal",
    autocomplete: "off",
    required: true,
  });
  const presets = el("div", { className: "pf-presets", role: "group", "aria-label": t("Amount presets") });
  for (const value of PRESETS) {
    const button = el("button", { type: "button", className: "secondary small", "data-amount": value, text: `${value}` });
    button.addEventListener("click", () => {
      amount.value = String(value);
      S.touched.add("amount");
      amount.dispatchEvent(new Event("input"));
      amount.focus();
    });
    presets.append(button);
  }
  const frequency = el(
    "fieldset",
    { className: "pf-choice pf-frequency" },
    el("legend", { text: t("How often") }),
    el("label", {}, el("input", { type: "radio", name: "frequency", value: "one_off", checked: true }), ` ${t("Once")}`),
    el("label", {}, el("input", { type: "radio", name: "frequency", value: "monthly" }), ` ${t("Monthly")}`),
  );
  const channel = el(
    "select",
    {},
    el("option", { value: "web_link", text: t("Payment link (e-mail or SMS)") }),
    el("option", { value: "cheque", text: t("Cheque by post") }),
    el("option", { value: "bank_transfer", text: t("Bank transfer") }),
  );
  // The amount and its presets on one line, the hint under them.
  const amountField = field("amount", t("Amount (€)"), amount, t("Whole euros or with cents, e.g. 25 or 25,50"));
  const amountRow = el("div", { className: "pf-amount-row" });
  amount.replaceWith(amountRow);
  amountRow.append(amount, presets);
  const form = el(
    "form",
    { id: "pf-form", novalidate: true, autocomplete: "off" },
    el("div", { className: "pf-amount" }, amountField),
    el("div", { className: "pf-row" }, frequency, field("channel", t("Payment by"), channel)),
    el("div", { className: "pf-grid" },
      text("first_name", t("First name")),
      text("last_name", t("Last name")),
      text("phone", t("Phone"), { inputmode: "tel" }),
      text("address", t("Address")),
      text("postcode", t("Postcode"), { inputmode: "numeric" }),
      text("city", t("City")),
      text("country", t("Country"), { maxlength: "2", value: "FR" }),
      text("email", t("E-mail"), { inputmode: "email", spellcheck: "false" }),
    ),
    el("fieldset", { className: "pf-choice pf-consents" },
      el("legend", { text: t("Consents") }),
      el("label", {}, el("input", { type: "checkbox", name: "consent_contact", id: "pf-consent_contact" }), ` ${t("We may contact them")}`),
      el("label", {}, el("input", { type: "checkbox", name: "consent_tax_receipt", id: "pf-consent_tax_receipt" }), ` ${t("Tax receipt wanted")}`),
      // The board shows the first name and town, nothing else; the label is short so
      // that Save stays above the fold at 1366x768, its title the question to ask.
      el("label", { title: t("May we show your first name and town on air?") },
        el("input", { type: "checkbox", name: "consent_board", id: "pf-consent_board" }), ` ${t("First name and town on air")}`),
    ),
    text("note", t("Note"), {}, t("Never write card details: the donor pays on the website.")),
    el("p", { className: "error", id: "pf-error", role: "alert" }),
    el("div", { className: "actions pf-actions" },
      el("button", { type: "submit", id: "pf-save", text: t("Save pledge") }),
      el("span", { className: "hint", text: t("Enter saves") }),
    ),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    save();
  });
  const saved = el("div", { id: "pf-saved", className: "pf-saved", "aria-live": "polite", hidden: true });
  panel.replaceChildren(el("h2", { id: "pledge-title", text: t("Pledge") }), saved, form);
}

function input(name) {
  return document.getElementById(`pf-${name}`);
}

function placeholder(message) {
  panel.replaceChildren(
    el("h2", { id: "pledge-title", text: t("Pledge") }),
    el("p", { className: "placeholder", text: message }),
  );
}

function reset(callId) {
  S.callId = callId;
  S.key = newKey();
  S.saved = null;
  S.locked = false;
  S.touched = new Set();
  build();
  if (S.lastPop && S.lastPop.call_id === callId) applyPop(S.lastPop.pop);
}

// --- pre-fill from the screen pop ------------------------------------------------

function prefill(name, value, source) {
  const node = input(name);
  if (!node || S.touched.has(name) || S.saved || value === null || value === undefined || value === "") return;
  node.value = value;
  const confirm = document.getElementById(`pf-${name}-confirm`);
  confirm.replaceChildren(
    el("span", { className: "badge confirm-badge", text: t("to confirm") }),
    el("span", { className: "pop-source", text: source ? ` ${sourceText(source)}` : "" }),
  );
  confirm.hidden = false;
  node.dataset.prefilled = source || "";
}

function sourceText(source) {
  return SOURCE_LABELS[source] ? t(SOURCE_LABELS[source]) : t("from {source}", { source });
}

function applyPop(pop) {
  if (!pop || pop.status === "skipped_withheld" || pop.status === "skipped_invalid") return; // empty form
  const f = pop.fields || {};
  const pick = (key) => (f[key] ? f[key] : { value: null, source: null });
  prefill("first_name", pick("first_name").value, pick("first_name").source);
  prefill("last_name", pick("last_name").value, pick("last_name").source);
  const lines = pick("address_lines");
  prefill("address", (lines.value || []).join(", "), lines.source);
  prefill("postcode", pick("postcode").value, pick("postcode").source);
  prefill("city", pick("city").value, pick("city").source);
  prefill("email", pick("email").value, pick("email").source);
  const phone = pick("phone");
  prefill("phone", phone.display || phone.value, phone.source);
}

// --- saving ------------------------------------------------------------------------

function toMinor(text) {
  const clean = String(text || "").trim().replace(/\s/g, "").replace(",", ".");
  if (!/^\d+(\.\d{1,2})?$/.test(clean)) return null;
  const [whole, cents = ""] = clean.split(".");
  return Number(whole) * 100 + Number(cents.padEnd(2, "0"));
}

function body() {
  const form = document.getElementById("pf-form");
  const data = {
    frequency: form.querySelector("input[name=frequency]:checked").value,
    channel: input("channel").value,
    consent_contact: input("consent_contact").checked,
    consent_tax_receipt: input("consent_tax_receipt").checked,
    consent_board: input("consent_board").checked,
  };
  for (const name of FIELDS) if (name !== "amount") data[name] = input(name).value.trim();
  data.country = (data.country || "FR").toUpperCase();
  data.amount_minor = toMinor(input("amount").value);
  return data;
}

function showError(fieldName, message) {
  const name = fieldName === "amount_minor" || fieldName === "currency" ? "amount" : fieldName;
  const node = name ? input(name) : null;
  if (node) {
    document.getElementById(`pf-${name}-error`).textContent = message;
    node.setAttribute("aria-invalid", "true");
    node.focus();
  } else {
    document.getElementById("pf-error").textContent = message;
  }
}

function clearErrors() {
  for (const node of panel.querySelectorAll(".error")) node.textContent = "";
  for (const node of panel.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
}

async function send(method, path, payload, extraHeaders = {}) {
  const headers = { "Content-Type": "application/json", Accept: "application/json", ...extraHeaders };
  if (screen.me && screen.me.csrf_token) headers["X-CSRF-Token"] = screen.me.csrf_token;
  const response = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    cache: "no-store",
    body: JSON.stringify(payload),
  });
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = { message: `HTTP ${response.status}` };
  }
  return { ok: response.ok, status: response.status, data };
}

async function save() {
  if (S.busy || S.locked || !S.callId) return;
  clearErrors();
  const data = body();
  if (data.amount_minor === null) {
    showError("amount", t("Enter the amount, e.g. 25 or 25,50"));
    return;
  }
  S.busy = true;
  const button = document.getElementById("pf-save");
  button.disabled = true;
  try {
    let result;
    if (screen.practice) {
      // A practice call (practice.js): the same checks, kept in the practice call only.
      result = await send("POST", `/practice/calls/${encodeURIComponent(screen.practice.id)}/pledge`, data);
    } else if (S.saved) {
      result = await send("PATCH", `/pledges/${encodeURIComponent(S.saved.reference)}`, data);
    } else {
      // The same key for every attempt of this form: a retry returns the first answer.
      result = await send("POST", "/pledges", { ...data, call_id: S.callId }, { "Idempotency-Key": S.key });
    }
    if (result.ok) {
      showSaved(result.data, Boolean(S.saved));
    } else if (result.data && result.data.code === "not_editable") {
      lock(t("The wrap-up is over: ask a supervisor to correct this pledge."));
    } else {
      showError(result.data && result.data.field, (result.data && result.data.message) || t("Not saved."));
    }
  } catch {
    showError(null, t("Network problem: nothing lost, press Save again."));
  } finally {
    S.busy = false;
    if (!S.locked) button.disabled = false;
  }
}

function money(minor, currency) {
  try {
    return formatMoney(minor, currency);
  } catch {
    return `${(minor / 100).toFixed(2)} ${currency}`;
  }
}

function showSaved(pledge, corrected) {
  S.saved = pledge;
  const box = document.getElementById("pf-saved");
  box.hidden = false;
  box.replaceChildren(
    el("p", {
      className: "pf-saved-line",
      text: corrected ? t("Pledge corrected. Reference:") : t("Pledge saved. Read the reference back:"),
    }),
    el("p", { className: "pf-reference", id: "pf-reference", translate: "no", text: pledge.reference }),
    el("p", { className: "hint", text: savedAmount(pledge) }),
  );
  document.getElementById("pf-save").textContent = t("Save changes");
  for (const node of panel.querySelectorAll(".pf-confirm")) node.hidden = true;
}

function savedAmount(pledge) {
  const amount = money(pledge.amount_minor, pledge.currency);
  const line = pledge.frequency === "monthly" ? t("{amount} a month", { amount }) : amount;
  return pledge.flagged_for_review ? t("{amount} — a supervisor will check this amount.", { amount: line }) : line;
}

function lock(message) {
  S.locked = true;
  const form = document.getElementById("pf-form");
  if (!form) return;
  for (const node of form.querySelectorAll("input, select, button")) node.disabled = true;
  document.getElementById("pf-error").textContent = message;
}

// --- the call on screen ----------------------------------------------------------------

function clear() {
  // The call is over: the form and what it held leave the screen (and this page).
  S.callId = null;
  S.key = null;
  S.saved = null;
  S.locked = false;
  S.touched = new Set();
  S.lastPop = null;
  placeholder(t("The pledge form opens with a call."));
}

bus.addEventListener("call", ({ detail }) => {
  const call = detail.call;
  if (call && call.state === "transferred") {
    clear(); // the caller is someone else's now
  } else if (call && call.id !== S.callId) {
    reset(call.id);
  } else if (!call && S.callId !== null) {
    // Wrap-up ended (by the volunteer, a supervisor or its timer): no personal data
    // stays on an idle screen. A pledge is saved during the call or the wrap-up.
    clear();
  }
});

bus.addEventListener("pop", ({ detail }) => {
  S.lastPop = detail;
  if (detail.call_id === S.callId) applyPop(detail.pop);
});

bus.addEventListener("ready", () => {
  if (!S.callId) placeholder(t("The pledge form opens with a call."));
});

placeholder(t("The pledge form opens with a call."));
