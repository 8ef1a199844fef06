// Payment reconciliation on the organiser screen (its own section of organiser.html):
// import a provider's or the bank's CSV export for the campaign chosen above
// (POST /payments/imports, the file itself as the body), show a refused file's
// problems line by line, the lines waiting for a pledge (record the payment on the
// pledge the organiser picks, or dismiss the line) and the over- and under-payments
// (mark them checked). Reads the campaign from organiser.js's #campaign select.

import { api, setText, whoAmI } from "/static/common.js";

const $ = (id) => document.getElementById(id);
const ui = {
  campaign: $("campaign"),
  form: $("recon-upload"),
  source: $("recon-source"),
  file: $("recon-file"),
  status: $("recon-status"),
  problems: $("recon-problems"),
  unmatched: document.querySelector("#recon-unmatched tbody"),
  unmatchedEmpty: $("recon-unmatched-empty"),
  differences: document.querySelector("#recon-differences tbody"),
  differencesEmpty: $("recon-differences-empty"),
};
let csrf = "";

function money(minor, currency) {
  let format;
  try {
    format = new Intl.NumberFormat(undefined, { style: "currency", currency });
  } catch {
    format = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2 });
  }
  const digits = format.resolvedOptions().maximumFractionDigits ?? 2;
  return format.format(Number(minor) / 10 ** digits);
}

function day(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : d.toISOString().slice(0, 10);
}

function status(text, isError = false) {
  ui.status.classList.toggle("error", isError);
  setText(ui.status, text);
}

function cell(row, text, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  td.textContent = text;
  row.append(td);
  return td;
}

function button(label, onClick, secondary = false) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  if (secondary) b.className = "secondary";
  b.addEventListener("click", onClick);
  return b;
}

async function act(path, body) {
  const r = await api(path, { method: "POST", body, csrf });
  if (!r.ok) {
    status((r.data && r.data.message) || `Refused (${r.status}).`, true);
    return false;
  }
  return true;
}

function unmatchedRow(line) {
  const tr = document.createElement("tr");
  tr.dataset.lineId = String(line.id);
  cell(tr, day(line.booked_at), "recon-date");
  cell(tr, money(line.amount_minor, line.currency), "num");
  cell(tr, line.label);
  cell(tr, line.payer);
  const best = line.suggestions[0];
  const suggestion = cell(tr, "");
  if (best) {
    const owed = best.pledge.amount_minor - best.pledge.paid_minor;
    suggestion.textContent = `${best.pledge.reference} ${best.pledge.name} (owes ${money(owed, best.pledge.currency)}) `;
    const sure = document.createElement("span");
    sure.className = "recon-confidence";
    sure.textContent = `${best.confidence} % sure`;
    suggestion.append(sure);
  } else {
    suggestion.textContent = line.note || "no pledge found";
  }
  const refCell = cell(tr, "");
  const input = document.createElement("input");
  input.className = "recon-ref";
  input.value = best ? best.pledge.reference : "";
  input.setAttribute("aria-label", `Pledge reference for the line of ${money(line.amount_minor, line.currency)} from ${line.payer || "an unknown payer"}`);
  refCell.append(input);
  const actions = cell(tr, "", "row-actions");
  actions.append(
    button("Record payment", async () => {
      if (!input.value.trim()) {
        status("Type the pledge's reference first.", true);
        input.focus();
        return;
      }
      if (await act(`/payments/lines/${line.id}/match`, { reference: input.value.trim() })) {
        status(`Payment recorded on ${input.value.trim().toUpperCase()}.`);
        refresh();
      }
    }),
    button("Not a pledge", async () => {
      if (await act(`/payments/lines/${line.id}/dismiss`)) {
        status("Line set aside.");
        refresh();
      }
    }, true),
  );
  return tr;
}

function differenceRow(line) {
  const tr = document.createElement("tr");
  tr.dataset.lineId = String(line.id);
  cell(tr, day(line.booked_at), "recon-date");
  cell(tr, money(line.amount_minor, line.currency), "num");
  cell(tr, line.pledge ? `${line.pledge.reference} ${line.pledge.name}` : "");
  cell(tr, line.pledge ? money(line.pledge.amount_minor, line.pledge.currency) : "", "num");
  const diff = line.difference_minor;
  const text = diff > 0
    ? `${money(diff, line.currency)} over`
    : `${money(-diff, line.currency)} under`;
  cell(tr, text, "num");
  cell(tr, "", "row-actions").append(
    button("Checked", async () => {
      if (await act(`/payments/lines/${line.id}/reviewed`)) refresh();
    }, true),
  );
  return tr;
}

async function loadLines(view, body, empty, makeRow) {
  const params = new URLSearchParams({ campaign_id: ui.campaign.value, view, limit: "500" });
  const r = await api(`/payments/lines?${params}`);
  if (!r.ok) return;
  body.replaceChildren(...r.data.map(makeRow));
  empty.hidden = r.data.length > 0;
}

async function refresh() {
  if (!ui.campaign.value) return;
  await Promise.all([
    loadLines("unmatched", ui.unmatched, ui.unmatchedEmpty, unmatchedRow),
    loadLines("differences", ui.differences, ui.differencesEmpty, differenceRow),
  ]);
  $("reconciliation").dataset.loaded = "true";
}

async function loadSources() {
  const r = await api("/payments/sources");
  if (!r.ok) return;
  const options = r.data.map((s) => new Option(`${s.name} (${s.kind})`, s.name));
  ui.source.replaceChildren(...options);
  if (!options.length) status("No payment source saved yet: see docs/reconciliation.md.", true);
}

function showProblems(body) {
  const items = (body.problems || []).map((p) => {
    const li = document.createElement("li");
    const where = p.line === null ? "File" : `Line ${p.line}`;
    const column = p.column ? `, column “${p.column}”` : "";
    li.textContent = `${where}${column}: ${p.reason}`;
    return li;
  });
  if (body.more_problems) {
    const li = document.createElement("li");
    li.textContent = `… and ${body.more_problems} more.`;
    items.push(li);
  }
  ui.problems.replaceChildren(...items);
}

async function upload(event) {
  event.preventDefault();
  const file = ui.file.files[0];
  if (!file || !ui.source.value || !ui.campaign.value) {
    status("Choose a source and a file.", true);
    return;
  }
  ui.problems.replaceChildren();
  status("Importing…");
  const params = new URLSearchParams({
    source: ui.source.value,
    campaign_id: ui.campaign.value,
    filename: file.name.slice(0, 200),
  });
  const response = await fetch(`/payments/imports?${params}`, {
    method: "POST",
    headers: { Accept: "application/json", "Content-Type": "text/csv", "X-CSRF-Token": csrf },
    credentials: "same-origin",
    cache: "no-store",
    body: file,
  });
  let body = {};
  try {
    body = await response.json();
  } catch {
    body = { message: `The server answered ${response.status}.` };
  }
  if (!response.ok) {
    status(body.message || `Refused (${response.status}).`, true);
    if (body.code === "bad_file") showProblems(body);
    return;
  }
  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
  status(
    `Import ${body.id}: ${plural(body.lines, "line")}, ${plural(body.recorded, "payment")} recorded, ` +
      `${body.already_recorded} already recorded, ${body.unmatched} to match, ` +
      `${body.ignored} ignored, ${body.duplicates} imported before.`,
  );
  ui.form.reset();
  refresh();
}

async function main() {
  let me;
  try {
    me = await whoAmI();
  } catch {
    return; // organiser.js says the server cannot be reached
  }
  if (!me || (me.role !== "organiser" && me.role !== "admin")) return;
  csrf = me.csrf_token;
  ui.form.addEventListener("submit", upload);
  ui.campaign.addEventListener("change", refresh);
  await loadSources();
  // organiser.js fills the campaign list: start once it has a campaign.
  if (ui.campaign.value) {
    refresh();
  } else {
    const watch = new MutationObserver(() => {
      if (ui.campaign.value) {
        watch.disconnect();
        refresh();
      }
    });
    watch.observe(ui.campaign, { childList: true });
  }
}

main();
