// Payment links and payments by hand on the organiser screen (its own section of
// organiser.html; docs/pledges.md): the campaign's web-link pledges whose link has
// not gone out (the link to send, and "Mark as sent": POST /pledges/{ref}/link-sent),
// and a payment received by cheque or transfer (POST /pledges/{ref}/payments). The
// payment carries an id made once per payment typed in (provider_payment_id), so a
// form sent twice (a double click, a retry after a lost answer) records it once.
// Reads the campaign from organiser.js's #campaign select.

import { api, setText, whoAmI } from "/static/common.js";
import { formatMoney, parseAmount, t } from "/static/i18n.js";

const $ = (id) => document.getElementById(id);
const ui = {
  section: $("payments"),
  campaign: $("campaign"),
  links: document.querySelector("#links-table tbody"),
  linksEmpty: $("links-empty"),
  form: $("payment-form"),
  reference: $("payment-reference"),
  amount: $("payment-amount"),
  date: $("payment-date"),
  status: $("payments-status"),
};
let csrf = "";
// The id of the payment being typed in: kept until it is recorded or changed.
let paymentId = null;

function status(text, isError = false) {
  ui.status.classList.toggle("error", isError);
  setText(ui.status, text);
}

function cell(row, content) {
  const td = document.createElement("td");
  if (content instanceof Node) td.append(content);
  else td.textContent = content ?? "";
  row.append(td);
  return td;
}

function linkRow(pledge) {
  const tr = document.createElement("tr");
  tr.dataset.reference = pledge.reference;
  const ref = document.createElement("th");
  ref.scope = "row";
  ref.textContent = pledge.reference;
  tr.append(ref);
  cell(tr, [pledge.first_name, pledge.last_name].filter(Boolean).join(" "));
  cell(tr, formatMoney(pledge.amount_minor, pledge.currency));
  cell(tr, pledge.email || pledge.phone || "");
  const link = document.createElement("a");
  link.href = pledge.payment_link;
  link.target = "_blank";
  link.rel = "noopener noreferrer";
  link.textContent = pledge.payment_link;
  cell(tr, link);
  const button = document.createElement("button");
  button.type = "button";
  button.className = "secondary small";
  button.textContent = t("Mark as sent");
  button.setAttribute("aria-label", t("Mark the link of {reference} as sent", { reference: pledge.reference }));
  button.addEventListener("click", async () => {
    button.disabled = true;
    const r = await api(`/pledges/${encodeURIComponent(pledge.reference)}/link-sent`, {
      method: "POST",
      csrf,
    });
    if (!r.ok) {
      button.disabled = false;
      status((r.data && r.data.message) || t("Refused ({status}).", { status: r.status }), true);
      return;
    }
    status(t("Payment link of {reference} marked as sent.", { reference: pledge.reference }));
    await loadLinks();
  });
  cell(tr, button);
  return tr;
}

async function loadLinks() {
  if (!ui.campaign.value) return;
  const params = new URLSearchParams({ campaign_id: ui.campaign.value, status: "promised", limit: "1000" });
  const r = await api(`/pledges?${params}`);
  if (!r.ok) return;
  const waiting = r.data.filter((p) => p.channel === "web_link" && p.payment_link);
  ui.links.replaceChildren(...waiting.map(linkRow));
  ui.linksEmpty.hidden = waiting.length > 0;
  ui.section.dataset.loaded = "true";
}

async function record(event) {
  event.preventDefault();
  const reference = ui.reference.value.trim().toUpperCase();
  const amount = parseAmount(ui.amount.value);
  if (!reference) {
    status(t("Type the pledge's reference first."), true);
    ui.reference.focus();
    return;
  }
  if (!amount) {
    status(t("Type the amount received, such as 25 or 25,50."), true);
    ui.amount.focus();
    return;
  }
  paymentId = paymentId || `manual-${crypto.randomUUID()}`;
  const body = { amount_minor: amount, provider_payment_id: paymentId };
  if (ui.date.value) body.received_at = new Date(`${ui.date.value}T12:00`).toISOString();
  const button = $("payment-record");
  button.disabled = true;
  try {
    const r = await api(`/pledges/${encodeURIComponent(reference)}/payments`, {
      method: "POST",
      body,
      csrf,
    });
    if (!r.ok) {
      status((r.data && r.data.message) || t("Refused ({status}).", { status: r.status }), true);
      return;
    }
    status(
      t("Payment of {amount} recorded on {reference}: {paid} paid of {promised}.", {
        amount: formatMoney(amount, r.data.currency),
        reference: r.data.reference,
        paid: formatMoney(r.data.paid_minor, r.data.currency),
        promised: formatMoney(r.data.amount_minor, r.data.currency),
      }),
    );
    paymentId = null;
    ui.form.reset();
    await loadLinks();
  } catch {
    // No answer: the same id goes with the retry, so the payment is recorded once.
    status(t("No answer from the server; send again: the payment will be recorded once."), true);
  } finally {
    button.disabled = false;
  }
}

async function main() {
  const me = await whoAmI().catch(() => null);
  if (!me || (me.role !== "organiser" && me.role !== "admin")) return;
  csrf = me.csrf_token;
  ui.section.hidden = false;
  ui.form.addEventListener("submit", record);
  // Another payment typed in: another id.
  for (const input of [ui.reference, ui.amount, ui.date]) {
    input.addEventListener("input", () => (paymentId = null));
  }
  ui.campaign.addEventListener("change", loadLinks);
  if (ui.campaign.value) {
    await loadLinks();
  } else {
    // organiser.js fills the campaign list: load once it has a campaign.
    const watch = new MutationObserver(() => {
      if (ui.campaign.value) {
        watch.disconnect();
        loadLinks();
      }
    });
    watch.observe(ui.campaign, { childList: true });
  }
}

main();
