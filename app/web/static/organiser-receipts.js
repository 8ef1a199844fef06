// The organiser screen's tax receipts: issue the campaign's due receipts (POST
// /receipts/issue, optionally e-mailing them), list them (GET /receipts) with a link
// to each PDF. Reads the campaign from the screen's campaign selector.

import { api, setText, whoAmI } from "/static/common.js";
import { t } from "/static/i18n.js";

const $ = (id) => document.getElementById(id);
const ui = {
  campaign: $("campaign"),
  send: $("receipts-send"),
  issue: $("receipts-issue"),
  status: $("receipts-status"),
  rows: document.querySelector("#receipts-table tbody"),
};
let csrf = null;

function status(text, isError = false) {
  ui.status.classList.toggle("error", isError);
  setText(ui.status, text);
}

function money(minor, currency) {
  try {
    const format = new Intl.NumberFormat("fr-FR", { style: "currency", currency });
    const digits = format.resolvedOptions().maximumFractionDigits ?? 2;
    return format.format(Number(minor) / 10 ** digits);
  } catch {
    return `${minor} ${currency}`;
  }
}

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

function row(receipt) {
  const tr = document.createElement("tr");
  tr.dataset.receiptId = String(receipt.id);
  const number = document.createElement("th");
  number.scope = "row";
  number.textContent = receipt.number;
  tr.append(
    number,
    cell(receipt.pledge_reference),
    cell(receipt.donor_name),
    cell(money(receipt.amount_minor, receipt.currency)),
    cell(receipt.status === "cancelled" ? t("Cancelled") : t("Issued")),
    cell(receipt.sent_to || "–"),
  );
  const pdf = document.createElement("td");
  if (receipt.status === "issued") {
    const link = document.createElement("a");
    link.href = `/receipts/${encodeURIComponent(receipt.id)}/pdf`;
    link.textContent = t("Download");
    link.setAttribute("download", "");
    link.setAttribute("aria-label", t("Download receipt {number}", { number: receipt.number }));
    pdf.append(link);
  }
  tr.append(pdf);
  return tr;
}

async function loadReceipts() {
  if (!ui.campaign.value) return;
  const r = await api(`/receipts?campaign_id=${encodeURIComponent(ui.campaign.value)}&limit=1000`);
  if (!r.ok) {
    status((r.data && r.data.message) || t("The receipts could not be read ({status}).", { status: r.status }), true);
    return;
  }
  ui.rows.replaceChildren(...r.data.map(row));
}

async function issue() {
  ui.issue.disabled = true;
  status(t("Issuing…"));
  try {
    const r = await api("/receipts/issue", {
      method: "POST",
      csrf,
      body: { campaign_id: Number(ui.campaign.value), send: ui.send.checked },
    });
    if (!r.ok) {
      status((r.data && r.data.message) || t("The receipts could not be issued ({status}).", { status: r.status }), true);
      return;
    }
    const d = r.data;
    let text = t("{count} receipts issued", { count: d.issued });
    if (d.numbers.length) {
      const range = { first: d.numbers[0], last: d.numbers[d.numbers.length - 1] };
      text += t(" ({first} to {last})", range);
    }
    if (ui.send.checked) {
      text += t("; {sent} e-mailed, {without} without an e-mail address (download them)", {
        sent: d.sent,
        without: d.without_email,
      });
      if (d.send_failed) text += t(", {count} not sent (mail server)", { count: d.send_failed });
    }
    status(`${text}.`, d.send_failed > 0);
    await loadReceipts();
  } finally {
    ui.issue.disabled = false;
  }
}

async function main() {
  const me = await whoAmI().catch(() => null);
  if (!me || (me.role !== "organiser" && me.role !== "admin")) return;
  csrf = me.csrf_token;
  ui.issue.addEventListener("click", issue);
  ui.campaign.addEventListener("change", loadReceipts);
  // organiser.js fills the campaign list after start-up: list the receipts then.
  new MutationObserver(loadReceipts).observe(ui.campaign, { childList: true });
  await loadReceipts();
}

main();
