// The volunteers' roster on the organiser screen (its own section of organiser.html),
// for admins only: register one volunteer (POST /roster/volunteers), import a CSV or
// XLSX file (POST /roster/import, the file itself as the body; a refused file's rows
// listed one by one, nothing imported), and a site's PIN sheet (POST
// /sites/{id}/pin-sheet: re-issued PINs, printed from this page). PINs are shown
// once, in this page only. Reads the campaign from organiser.js's #campaign select.

import { api, setText, whoAmI } from "/static/common.js";
import { t } from "/static/i18n.js";

const $ = (id) => document.getElementById(id);
const ui = {
  section: $("roster"),
  campaign: $("campaign"),
  one: $("roster-one"),
  site: $("roster-site"),
  importForm: $("roster-import"),
  file: $("roster-file"),
  status: $("roster-status"),
  refused: $("roster-refused"),
  logins: $("roster-logins"),
  sheetForm: $("roster-sheet-form"),
  sheetSite: $("roster-sheet-site"),
  sheetWho: $("roster-sheet-who"),
  sheet: $("roster-sheet"),
  sheetBody: $("roster-sheet-body"),
  print: $("roster-print-btn"),
};
let csrf = "";

function status(text, isError = false) {
  ui.status.classList.toggle("error", isError);
  setText(ui.status, text);
}

function showLogins(logins) {
  const body = ui.logins.querySelector("tbody");
  body.replaceChildren();
  for (const login of logins) {
    const tr = document.createElement("tr");
    for (const text of [login.display_name, login.username, login.pin]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    body.append(tr);
  }
  ui.logins.hidden = logins.length === 0;
}

function showRefused(data) {
  ui.refused.replaceChildren();
  for (const row of (data && data.rows) || []) {
    const li = document.createElement("li");
    const where = row.field
      ? t("Line {line} ({field})", { line: row.line, field: row.field })
      : t("Line {line}", { line: row.line });
    li.textContent = `${where}: ${row.message}`;
    ui.refused.append(li);
  }
}

async function loadSites() {
  if (!ui.campaign.value) return;
  const r = await api(`/sites?campaign_id=${encodeURIComponent(ui.campaign.value)}`);
  const sites = r.ok ? r.data : [];
  ui.site.replaceChildren(new Option(t("(none)"), ""));
  ui.sheetSite.replaceChildren();
  for (const site of sites) {
    ui.site.append(new Option(site.name, String(site.id)));
    ui.sheetSite.append(new Option(`${site.name} (${site.organisation})`, String(site.id)));
  }
}

async function registerOne(event) {
  event.preventDefault();
  const value = (id) => $(id).value.trim() || null;
  const body = {
    campaign_id: Number(ui.campaign.value),
    display_name: value("roster-name") || "",
    site_id: ui.site.value ? Number(ui.site.value) : null,
    email: value("roster-email"),
    phone: value("roster-phone"),
    employer: value("roster-employer"),
    trained: $("roster-trained").checked,
  };
  ui.refused.replaceChildren();
  const r = await api("/roster/volunteers", { method: "POST", body, csrf });
  if (!r.ok) {
    status((r.data && r.data.message) || t("Refused ({status}).", { status: r.status }), true);
    return;
  }
  showLogins([r.data.login]);
  ui.one.reset();
  status(t("{name} registered: their PIN is below, shown this once.", { name: r.data.login.display_name }));
}

async function importFile(event) {
  event.preventDefault();
  const file = ui.file.files[0];
  if (!file || !ui.campaign.value) {
    status(t("Choose a file."), true);
    return;
  }
  ui.refused.replaceChildren();
  showLogins([]);
  status(t("Importing…"));
  const response = await fetch(`/roster/import?campaign_id=${encodeURIComponent(ui.campaign.value)}`, {
    method: "POST",
    headers: { Accept: "application/json", "Content-Type": "application/octet-stream", "X-CSRF-Token": csrf },
    credentials: "same-origin",
    cache: "no-store",
    body: file,
  });
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    status((data && data.message) || t("Refused ({status}).", { status: response.status }), true);
    showRefused(data);
    return;
  }
  showLogins(data.logins);
  ui.importForm.reset();
  const count = data.imported;
  status(
    count === 1
      ? t("{count} volunteer imported: their PIN is below, shown this once.", { count })
      : t("{count} volunteers imported: their PINs are below, shown this once.", { count }),
  );
}

async function makeSheet(event) {
  event.preventDefault();
  if (!ui.sheetSite.value) {
    status(t("Add a site first."), true);
    return;
  }
  const response = await fetch(`/sites/${encodeURIComponent(ui.sheetSite.value)}/pin-sheet`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    credentials: "same-origin",
    cache: "no-store",
    body: JSON.stringify({ volunteers: ui.sheetWho.value }),
  });
  const text = await response.text();
  if (!response.ok) {
    let message = t("Refused ({status}).", { status: response.status });
    try {
      message = JSON.parse(text).message || message;
    } catch {
      // not JSON: keep the status
    }
    status(message, true);
    return;
  }
  // The sheet's own page, read as data: its heading and table, shown and printed here.
  const sheet = new DOMParser().parseFromString(text, "text/html");
  ui.sheetBody.replaceChildren(
    ...[sheet.querySelector("h1"), sheet.querySelector("p"), sheet.querySelector("#pin-sheet")]
      .filter(Boolean)
      .map((node) => document.importNode(node, true)),
  );
  ui.sheet.hidden = false;
  const count = ui.sheetBody.querySelectorAll("tbody tr").length;
  status(
    count === 1
      ? t("PIN sheet ready: {count} PIN issued, shown this once.", { count })
      : t("PIN sheet ready: {count} PINs issued, shown this once.", { count }),
  );
}

function printSheet() {
  document.body.classList.add("printing-sheet");
  window.print();
  document.body.classList.remove("printing-sheet");
}

async function start() {
  const me = await whoAmI();
  if (!me || me.role !== "admin") return; // the roster is the admins'
  csrf = me.csrf_token;
  ui.section.hidden = false;
  ui.one.addEventListener("submit", registerOne);
  ui.importForm.addEventListener("submit", importFile);
  ui.sheetForm.addEventListener("submit", makeSheet);
  ui.print.addEventListener("click", printSheet);
  ui.campaign.addEventListener("change", loadSites);
  // organiser.js fills the campaign list: start once it has a campaign.
  if (ui.campaign.value) {
    loadSites();
  } else {
    const watch = new MutationObserver(() => {
      if (ui.campaign.value) {
        watch.disconnect();
        loadSites();
      }
    });
    watch.observe(ui.campaign, { childList: true });
  }
}

start();
