// The organiser screen: pledge totals of a campaign over a period (GET /pledges/totals),
// two charts (per hour, per time slot; Chart.js served by the app), the tables by
// slot, hour, queue, volunteer, partner and département, and the export links
// (GET /pledges/export.csv|xlsx, downloaded with the session cookie). The totals are
// read again when the campaign's figures move: the tote board's public push stream
// (/board/stream, at most one message a second) says when; no polling.

import {
  api,
  goToLogin,
  setText,
  showNotAllowed,
  signedInUser,
  signOut,
} from "/static/common.js";
import { formatMoney, formatPercent, N_, t } from "/static/i18n.js";

const $ = (id) => document.getElementById(id);
const TABLES = [
  ["by_slot", N_("By time slot"), N_("Time slot")],
  ["by_hour", N_("By hour (campaign time)"), N_("Hour")],
  ["by_queue", N_("By queue"), N_("Queue")],
  ["by_agent", N_("By volunteer"), N_("Volunteer")],
  ["by_partner", N_("By partner organisation"), N_("Partner")],
  ["by_departement", N_("By département"), N_("Département")],
];

const ui = {
  form: $("filters"),
  campaign: $("campaign"),
  since: $("since"),
  until: $("until"),
  status: $("org-status"),
  tables: $("tables"),
  exportStatus: $("export-status"),
  exportSlot: $("export-slot"),
  exportQueue: $("export-queue"),
  exportBom: $("export-bom"),
  csv: $("export-csv"),
  xlsx: $("export-xlsx"),
};

const charts = { hour: null, slot: null };
let totalsStream = null;

// --- formatting ----------------------------------------------------------------------

function moneyFormat(currency) {
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency });
  } catch {
    return new Intl.NumberFormat(undefined, { minimumFractionDigits: 2 });
  }
}

/** Minor units to a display amount in the page's language ("1 234,50 €"). */
function money(minor, currency) {
  if (minor === null || minor === undefined) return "–";
  return formatMoney(Number(minor), currency);
}

function major(minor, currency) {
  const digits = moneyFormat(currency).resolvedOptions().maximumFractionDigits ?? 2;
  return Number(minor || 0) / 10 ** digits;
}

function percent(rate) {
  if (rate === null || rate === undefined) return "–";
  return formatPercent(Number(rate));
}

function status(text, isError = false) {
  ui.status.classList.toggle("error", isError);
  setText(ui.status, text);
}

/** A ``datetime-local`` value (the browser's local time) as ISO 8601 UTC, or "". */
function isoUtc(input) {
  if (!input.value) return "";
  const d = new Date(input.value);
  return Number.isNaN(d.getTime()) ? "" : d.toISOString();
}

// --- filters and export links -----------------------------------------------------------

function periodParams() {
  const params = new URLSearchParams();
  params.set("campaign_id", ui.campaign.value);
  const since = isoUtc(ui.since);
  const until = isoUtc(ui.until);
  if (since) params.set("since", since);
  if (until) params.set("until", until);
  return params;
}

function updateExportLinks() {
  if (!ui.campaign.value) return;
  const params = periodParams();
  if (ui.exportStatus.value) params.set("status", ui.exportStatus.value);
  if (ui.exportSlot.value) params.set("slot", ui.exportSlot.value);
  if (ui.exportQueue.value) params.set("queue_id", ui.exportQueue.value);
  const xlsx = new URLSearchParams(params);
  if (ui.exportBom.checked) params.set("bom", "true");
  ui.csv.href = `/pledges/export.csv?${params}`;
  ui.xlsx.href = `/pledges/export.xlsx?${xlsx}`;
}

function fillSelect(select, rows, anyLabel) {
  const current = select.value;
  const options = [new Option(anyLabel, "")];
  for (const [value, label] of rows) options.push(new Option(label, value));
  select.replaceChildren(...options);
  if (rows.some(([value]) => String(value) === current)) select.value = current;
}

async function loadQueues() {
  const r = await api(`/queues?campaign_id=${encodeURIComponent(ui.campaign.value)}`);
  if (!r.ok) return;
  fillSelect(
    ui.exportQueue,
    r.data.map((q) => [String(q.id), q.name]),
    t("Any queue"),
  );
}

// --- charts ---------------------------------------------------------------------------

function chartFor(key, canvasId, rows, currency) {
  const labels = rows.map((row) => row.label);
  const data = {
    labels,
    datasets: [
      {
        type: "bar",
        label: t("Pledges"),
        data: rows.map((row) => row.count),
        backgroundColor: "#2f5fb3",
        yAxisID: "count",
      },
      {
        type: "line",
        label: t("Promised ({currency})", { currency }),
        data: rows.map((row) => major(row.promised_minor, currency)),
        borderColor: "#c2571a",
        backgroundColor: "#c2571a",
        yAxisID: "amount",
      },
    ],
  };
  if (charts[key]) {
    charts[key].data = data;
    charts[key].update();
    return;
  }
  if (!window.Chart) return; // the library did not load: the tables still show the figures
  charts[key] = new window.Chart($(canvasId), {
    data,
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      interaction: { mode: "index", intersect: false },
      scales: {
        count: { type: "linear", position: "left", beginAtZero: true, title: { display: true, text: t("pledges") } },
        amount: {
          type: "linear",
          position: "right",
          beginAtZero: true,
          grid: { drawOnChartArea: false },
          title: { display: true, text: currency },
        },
      },
    },
  });
}

// --- tables ---------------------------------------------------------------------------

/** The table's own CSV and XLSX (GET /pledges/totals.csv|xlsx), for the period shown. */
function tableDownloads(key) {
  const links = document.createElement("p");
  links.className = "actions table-downloads";
  for (const format of ["csv", "xlsx"]) {
    const params = periodParams();
    params.set("table", key);
    const a = document.createElement("a");
    a.className = "button secondary small";
    a.href = `/pledges/totals.${format}?${params}`;
    a.setAttribute("download", "");
    a.dataset.format = format;
    a.textContent = format === "csv" ? t("Download CSV") : t("Download XLSX");
    links.append(a);
  }
  return links;
}

function totalsTable(key, title, keyHeader, rows, currency) {
  const section = document.createElement("section");
  section.className = "card";
  section.id = `table-${key}`;
  const h = document.createElement("h2");
  h.id = `table-${key}-title`;
  h.textContent = t(title);
  section.setAttribute("aria-labelledby", h.id);
  section.append(h);
  section.append(tableDownloads(key));
  if (!rows.length) {
    const p = document.createElement("p");
    p.className = "hint";
    p.textContent = t("No pledges in this period.");
    section.append(p);
    return section;
  }
  const wrap = document.createElement("div");
  wrap.className = "table-wrap";
  const table = document.createElement("table");
  const thead = document.createElement("thead");
  const headRow = document.createElement("tr");
  const headers = [keyHeader, N_("Pledges"), N_("Promised"), N_("Paid"), N_("Average"), N_("Paid / promised")];
  for (const text of headers) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = t(text);
    headRow.append(th);
  }
  thead.append(headRow);
  const tbody = document.createElement("tbody");
  for (const row of rows) {
    const tr = document.createElement("tr");
    tr.dataset.key = row.key ?? "";
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = row.label ?? String(row.key ?? "–");
    tr.append(th);
    const values = [
      String(row.count),
      money(row.promised_minor, currency),
      money(row.paid_minor, currency),
      money(row.average_minor, currency),
      percent(row.fulfilment_rate),
    ];
    for (const value of values) {
      const td = document.createElement("td");
      td.className = "num";
      td.textContent = value;
      tr.append(td);
    }
    tbody.append(tr);
  }
  table.append(thead, tbody);
  wrap.append(table);
  section.append(wrap);
  return section;
}

function showTotals(totals) {
  const currency = totals.currency || "EUR";
  const overall = totals.overall || {};
  setText($("overall-count"), overall.count ?? 0);
  setText($("overall-promised"), money(overall.promised_minor ?? 0, currency));
  setText($("overall-paid"), money(overall.paid_minor ?? 0, currency));
  setText($("overall-average"), money(overall.average_minor, currency));
  setText($("overall-rate"), percent(overall.fulfilment_rate));
  chartFor("hour", "chart-hour", totals.by_hour || [], currency);
  chartFor("slot", "chart-slot", totals.by_slot || [], currency);
  ui.tables.replaceChildren(
    ...TABLES.map(([key, title, header]) => totalsTable(key, title, header, totals[key] || [], currency)),
  );
  fillSelect(
    ui.exportSlot,
    (totals.by_slot || []).filter((row) => row.key).map((row) => [String(row.key), row.label ?? row.key]),
    t("Any slot"),
  );
  updateExportLinks();
}

async function loadTotals() {
  if (!ui.campaign.value) return;
  const since = isoUtc(ui.since);
  const until = isoUtc(ui.until);
  if (since && until && since >= until) {
    status(t("“From” must be before “Until”."), true);
    return;
  }
  const r = await api(`/pledges/totals?${periodParams()}`);
  if (r.status === 401) {
    goToLogin();
    return;
  }
  if (!r.ok) {
    status((r.data && r.data.message) || t("The totals could not be read ({status}).", { status: r.status }), true);
    return;
  }
  showTotals(r.data);
  status(t("Updated at {time}.", { time: new Date().toLocaleTimeString([], { hour12: false }) }));
  document.body.dataset.loaded = "true";
}

/** Read the totals again each time the campaign's figures move (pushed, ≤ 1 a second). */
function followTotals() {
  if (totalsStream) totalsStream.close();
  const campaignId = ui.campaign.value;
  if (!campaignId) return;
  totalsStream = new EventSource(`/board/stream?campaign_id=${encodeURIComponent(campaignId)}`);
  let first = true;
  totalsStream.addEventListener("totals.updated", () => {
    // The first message is the figures already shown (or missed while reconnecting).
    if (first && document.body.dataset.loaded === "true") {
      first = false;
      return;
    }
    first = false;
    if (!document.hidden) loadTotals();
  });
  totalsStream.onerror = () => {
    first = false; // after a reconnection, the first message may carry news: read it
  };
}

// --- start ----------------------------------------------------------------------------

async function main() {
  const me = await signedInUser((text) => status(text, true));
  if (!me) return;
  setText($("who"), me.username);
  $("signout-btn").addEventListener("click", () => signOut(me.csrf_token));
  if (me.role !== "organiser" && me.role !== "admin") {
    showNotAllowed($("main"), { me, wanted: N_("organisers") });
    return;
  }
  const campaigns = await api("/campaigns");
  if (!campaigns.ok || !campaigns.data.length) {
    status(t("No campaign to show yet."), true);
    return;
  }
  fillSelect(
    ui.campaign,
    campaigns.data.map((c) => [String(c.id), `${c.name} (#${c.id})`]),
    t("Choose a campaign"),
  );
  const wanted = new URLSearchParams(location.search).get("campaign_id");
  const first = campaigns.data.find((c) => String(c.id) === wanted) || campaigns.data[0];
  ui.campaign.value = String(first.id);

  ui.form.addEventListener("submit", (event) => {
    event.preventDefault();
    loadTotals();
  });
  ui.campaign.addEventListener("change", async () => {
    await loadQueues();
    loadTotals();
    followTotals();
  });
  for (const input of [ui.since, ui.until, ui.exportStatus, ui.exportSlot, ui.exportQueue, ui.exportBom]) {
    input.addEventListener("change", updateExportLinks);
  }
  await loadQueues();
  await loadTotals();
  followTotals();
}

main();
