// Volunteer hours on the organiser screen (its own section of organiser.html; docs/roster.md,
// Hours report): GET /reports/hours for the campaign and period chosen at the top of the
// page, one line per volunteer, employer or site; CSV/XLSX download links; and, per
// employer, the link to its attestation PDF (French unless the browser asks for English).

import { api, setText, whoAmI } from "/static/common.js";
import { formatMoney, N_, t } from "/static/i18n.js";

const $ = (id) => document.getElementById(id);
const ui = {
  section: $("hours"),
  campaign: $("campaign"),
  since: $("since"),
  until: $("until"),
  form: $("hours-form"),
  group: $("hours-group"),
  status: $("hours-status"),
  table: $("hours-table"),
  csv: $("hours-csv"),
  xlsx: $("hours-xlsx"),
};

// The key columns of each grouping; the metrics follow.
const KEYS = {
  volunteer: [[N_("Volunteer"), "volunteer"], [N_("Employer"), "employer"], [N_("Site"), "site"]],
  employer: [[N_("Employer"), "employer"], [N_("Volunteers"), "volunteers"]],
  site: [[N_("Site"), "site"], [N_("Volunteers"), "volunteers"]],
};

/** 29400 -> "08:10" (to the nearest minute), as the report's files write it. */
function hhmm(seconds) {
  const minutes = Math.round((seconds || 0) / 60);
  return `${String(Math.floor(minutes / 60)).padStart(2, "0")}:${String(minutes % 60).padStart(2, "0")}`;
}

function isoUtc(input) {
  if (!input || !input.value) return "";
  const d = new Date(input.value);
  return Number.isNaN(d.getTime()) ? "" : d.toISOString();
}

function query(format) {
  const params = new URLSearchParams({ campaign_id: ui.campaign.value, group: ui.group.value });
  const since = isoUtc(ui.since);
  const until = isoUtc(ui.until);
  if (since) params.set("from", since);
  if (until) params.set("to", until);
  if (format) params.set("format", format);
  return params;
}

function attestationLink(employer) {
  const params = new URLSearchParams({ campaign_id: ui.campaign.value, employer });
  const since = isoUtc(ui.since);
  const until = isoUtc(ui.until);
  if (since) params.set("from", since);
  if (until) params.set("to", until);
  const a = document.createElement("a");
  a.href = `/reports/hours/attestation.pdf?${params}`;
  a.target = "_blank";
  a.rel = "noopener";
  a.textContent = t("Attestation (PDF)");
  return a;
}

function cell(tr, content, numeric = false) {
  const td = document.createElement("td");
  if (content instanceof Node) td.append(content);
  else td.textContent = content === null || content === undefined ? "—" : String(content);
  if (numeric) td.classList.add("num");
  tr.append(td);
}

function show(report) {
  const group = report.group;
  const head = document.createElement("tr");
  const headers = [
    ...KEYS[group].map(([label]) => label),
    N_("Shifts"), N_("Logged in"), N_("On calls"), N_("Calls"), N_("Pledges"), N_("Pledged"),
  ];
  if (group === "employer") headers.push(N_("For its CSR report"));
  for (const label of headers) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = t(label);
    head.append(th);
  }
  ui.table.tHead.replaceChildren(head);
  const body = ui.table.tBodies[0];
  body.replaceChildren();
  const line = (row, keys, total = false) => {
    const tr = document.createElement("tr");
    if (total) tr.classList.add("total");
    for (const key of keys) cell(tr, row[key] ?? (total ? "" : null));
    cell(tr, row.shifts, true);
    cell(tr, hhmm(row.logged_in_seconds), true);
    cell(tr, hhmm(row.call_seconds), true);
    cell(tr, row.calls, true);
    cell(tr, row.pledges, true);
    cell(tr, formatMoney(row.pledged_minor, report.currency), true);
    if (group === "employer") cell(tr, !total && row.employer ? attestationLink(row.employer) : "");
    return tr;
  };
  const keys = KEYS[group].map(([, key]) => key);
  for (const row of report.rows) body.append(line(row, keys));
  const totals = { ...report.totals, [keys[0]]: t("Total") };
  body.append(line(totals, keys, true));
  ui.table.hidden = false;
}

async function load(event) {
  if (event) event.preventDefault();
  if (!ui.campaign.value) return;
  setText(ui.status, t("Loading…"));
  ui.csv.href = `/reports/hours?${query("csv")}`;
  ui.xlsx.href = `/reports/hours?${query("xlsx")}`;
  const r = await api(`/reports/hours?${query("")}`);
  if (!r.ok) {
    ui.status.classList.add("error");
    setText(ui.status, (r.data && r.data.message) || t("Refused ({status}).", { status: r.status }));
    return;
  }
  ui.status.classList.remove("error");
  show(r.data);
  const count = r.data.rows.length;
  setText(ui.status, count === 1 ? t("1 line.") : t("{count} lines.", { count }));
}

async function start() {
  const me = await whoAmI();
  if (!me || !["admin", "organiser"].includes(me.role)) return;
  ui.section.hidden = false;
  ui.form.addEventListener("submit", load);
  ui.group.addEventListener("change", load);
  ui.campaign.addEventListener("change", load);
  // organiser.js fills the campaign list: start once it has a campaign.
  if (ui.campaign.value) {
    load();
  } else {
    const watch = new MutationObserver(() => {
      if (ui.campaign.value) {
        watch.disconnect();
        load();
      }
    });
    watch.observe(ui.campaign, { childList: true });
  }
}

start();
