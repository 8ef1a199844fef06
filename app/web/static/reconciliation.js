// Payment reconciliation on the organiser screen (its own section of organiser.html):
// import a provider's or the bank's CSV export for the campaign chosen above
// (POST /payments/imports, the file itself as the body), show a refused file's
// problems line by line, the lines waiting for a pledge (record the payment on the
// pledge the organiser picks, or dismiss the line) and the over- and under-payments
// (mark them checked). Reads the campaign from organiser.js's #campaign select.

import { api, setText, whoAmI } from "/static/common.js";
import { formatMoney, t } from "/static/i18n.js";

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
  return formatMoney(Number(minor), currency);
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
    status((r.data && r.data.message) || t("Refused ({status}).", { status: r.status }), true);
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
    const owes = t("owes {amount}", { amount: money(owed, best.pledge.currency) });
    suggestion.textContent = `${best.pledge.reference} ${best.pledge.name} (${owes}) `;
    const sure = document.createElement("span");
    sure.className = "recon-confidence";
    sure.textContent = t("{percent} % sure", { percent: best.confidence });
    suggestion.append(sure);
  } else {
    suggestion.textContent = line.note || t("no pledge found");
  }
  const refCell = cell(tr, "");
  const input = document.createElement("input");
  input.className = "recon-ref";
  input.value = best ? best.pledge.reference : "";
  input.setAttribute(
    "aria-label",
    t("Pledge reference for the line of {amount} from {payer}", {
      amount: money(line.amount_minor, line.currency),
      payer: line.payer || t("an unknown payer"),
    }),
  );
  refCell.append(input);
  const actions = cell(tr, "", "row-actions");
  actions.append(
    button(t("Record payment"), async () => {
      if (!input.value.trim()) {
        status(t("Type the pledge's reference first."), true);
        input.focus();
        return;
      }
      if (await act(`/payments/lines/${line.id}/match`, { reference: input.value.trim() })) {
        status(t("Payment recorded on {reference}.", { reference: input.value.trim().toUpperCase() }));
        refresh();
      }
    }),
    button(t("Not a pledge"), async () => {
      if (await act(`/payments/lines/${line.id}/dismiss`)) {
        status(t("Line set aside."));
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
    ? t("{amount} over", { amount: money(diff, line.currency) })
    : t("{amount} under", { amount: money(-diff, line.currency) });
  cell(tr, text, "num");
  cell(tr, "", "row-actions").append(
    button(t("Checked"), async () => {
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
  if (!options.length) status(t("No payment source saved yet: see docs/reconciliation.md."), true);
}

function showProblems(body) {
  const items = (body.problems || []).map((p) => {
    const li = document.createElement("li");
    const where = p.line === null ? t("File") : t("Line {line}", { line: p.line });
    const column = p.column ? t(", column “{column}”", { column: p.column }) : "";
    li.textContent = `${where}${column}: ${p.reason}`;
    return li;
  });
  if (body.more_problems) {
    const li = document.createElement("li");
    li.textContent = t("… and {count} more.", { count: body.more_problems });
    items.push(li);
  }
  ui.problems.replaceChildren(...items);
}

async function upload(event) {
  event.preventDefault();
  const file = ui.file.files[0];
  if (!file || !ui.source.value || !ui.campaign.value) {
    status(t("Choose a source and a file."), true);
    return;
  }
  ui.problems.replaceChildren();
  status(t("Importing…"));
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
    body = { message: t("The server answered {status}.", { status: response.status }) };
  }
  if (!response.ok) {
    status(body.message || t("Refused ({status}).", { status: response.status }), true);
    if (body.code === "bad_file") showProblems(body);
    return;
  }
  const lines = body.lines === 1 ? t("1 line") : t("{count} lines", { count: body.lines });
  const recorded = body.recorded === 1
    ? t("1 payment recorded")
    : t("{count} payments recorded", { count: body.recorded });
  status(
    t("Import {id}: {lines}, {recorded}, {already} already recorded, {unmatched} to match, {ignored} ignored, {duplicates} imported before.", {
      id: body.id,
      lines,
      recorded,
      already: body.already_recorded,
      unmatched: body.unmatched,
      ignored: body.ignored,
      duplicates: body.duplicates,
    }),
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
