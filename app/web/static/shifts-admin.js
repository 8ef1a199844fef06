// Shifts on the organiser screen, for admins (docs/roster.md, Shifts): add a shift at a
// site (its day and hours typed on the site's clock; an end at or before the start is
// the next day's, "20:00-00:00"), see the upcoming shifts with their sign-ups, delete
// one, sign a volunteer up or off, and import sign-ups from a file (POST
// /shifts/signups/import, all or nothing). Fills <section id="shifts-admin"> of
// organiser.html; reads the campaign from organiser.js's #campaign select.

import { api, setText, whoAmI } from "/static/common.js";
import { language, t, translateTree } from "/static/i18n.js";

const $ = (id) => document.getElementById(id);
const MARKUP = /* html */ `
  <h2 id="shifts-admin-title">Shifts</h2>
  <p class="hint">Time slots per site with the seats to fill, in each site's own time. Volunteers
    also sign themselves up from their page.</p>
  <h3>Add a shift</h3>
  <form id="shift-add" class="org-filters" novalidate>
    <div class="field"><label for="shift-site">Site</label><select id="shift-site" required></select></div>
    <div class="field"><label for="shift-day">Day</label><input id="shift-day" type="date" required></div>
    <div class="field"><label for="shift-start">From</label><input id="shift-start" type="time" value="20:00" required></div>
    <div class="field"><label for="shift-end">To</label><input id="shift-end" type="time" value="00:00" required></div>
    <div class="field"><label for="shift-seats">Seats</label><input id="shift-seats" type="number" min="1" value="10" required></div>
    <div class="field"><label for="shift-label">Label</label><input id="shift-label" maxlength="100"></div>
    <div class="field org-filters-go"><button id="shift-add-btn" type="submit">Add the shift</button></div>
  </form>
  <h3>Upcoming shifts</h3>
  <div class="table-wrap">
    <table id="shifts-table">
      <thead><tr><th>Site</th><th>Day</th><th>Hours</th><th>Label</th><th class="num">Signed up</th><th></th></tr></thead>
      <tbody></tbody>
    </table>
  </div>
  <p id="shifts-empty" class="placeholder">No upcoming shift.</p>
  <h3>Sign a volunteer up</h3>
  <form id="shift-signup" class="org-filters" novalidate>
    <div class="field"><label for="shift-signup-agent">Volunteer</label><select id="shift-signup-agent" required></select></div>
    <div class="field"><label for="shift-signup-shift">Shift</label><select id="shift-signup-shift" required></select></div>
    <div class="field org-filters-go"><button id="shift-signup-btn" type="submit">Sign up</button></div>
    <div class="field org-filters-go"><button id="shift-signoff-btn" type="button" class="secondary">Take off</button></div>
  </form>
  <h3>Import sign-ups</h3>
  <p class="hint">CSV or XLSX with a header line: login or email, and shift (its number) or site and
    start (the site's time, 2026-12-05 20:00). All or nothing.</p>
  <form id="shift-import" class="org-filters" novalidate>
    <div class="field"><label for="shift-import-file">Sign-up file</label>
      <input id="shift-import-file" type="file" accept=".csv,.xlsx,text/csv" required></div>
    <div class="field org-filters-go"><button id="shift-import-btn" type="submit">Import</button></div>
  </form>
  <p id="shifts-status" class="status-line" role="status"></p>
  <ul id="shifts-refused" class="recon-problems" aria-label="Refused rows"></ul>`;

let csrf = "";
let sites = [];

function status(text, isError = false) {
  const line = $("shifts-status");
  line.classList.toggle("error", isError);
  setText(line, text);
}

function refusal(r) {
  return (r.data && r.data.message) || t("Refused ({status}).", { status: r.status });
}

/** The UTC instant of a wall-clock time in a time zone ("2026-12-05", "20:00", "Europe/Paris"). */
export function zonedToUtc(day, time, timeZone) {
  const [y, m, d] = day.split("-").map(Number);
  const [hh, mm] = time.split(":").map(Number);
  const wall = Date.UTC(y, m - 1, d, hh, mm);
  const offsetAt = (instant) => {
    const parts = new Intl.DateTimeFormat("en-US", {
      timeZone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit",
    }).formatToParts(new Date(instant));
    const get = (type) => Number(parts.find((p) => p.type === type).value);
    return Date.UTC(get("year"), get("month") - 1, get("day"), get("hour"), get("minute"), get("second")) - instant;
  };
  let utc = wall - offsetAt(wall);
  utc = wall - offsetAt(utc); // once more, in case the guess crossed a change of offset
  return new Date(utc);
}

function campaignId() {
  return $("campaign").value;
}

async function loadSitesAndVolunteers() {
  if (!campaignId()) return;
  const [s, a] = await Promise.all([
    api(`/sites?campaign_id=${encodeURIComponent(campaignId())}`),
    api(`/agents?campaign_id=${encodeURIComponent(campaignId())}`),
  ]);
  sites = s.ok ? s.data : [];
  $("shift-site").replaceChildren(...sites.map((site) => new Option(site.name, String(site.id))));
  const agents = a.ok ? a.data : [];
  $("shift-signup-agent").replaceChildren(
    ...agents.map((agent) => new Option(`${agent.display_name} (${agent.login})`, String(agent.id))),
  );
  await loadShifts();
}

function day(shift) {
  return new Date(shift.starts_at).toLocaleDateString(language() === "fr" ? "fr-FR" : "en-GB", {
    weekday: "short", day: "numeric", month: "short", timeZone: shift.timezone,
  });
}

async function loadShifts() {
  const since = new Date().toISOString();
  const r = await api(`/shifts?campaign_id=${encodeURIComponent(campaignId())}&since=${encodeURIComponent(since)}`);
  const shifts = r.ok ? r.data : [];
  const body = $("shifts-table").querySelector("tbody");
  body.replaceChildren();
  const options = [];
  for (const shift of shifts) {
    const tr = document.createElement("tr");
    tr.dataset.shiftId = String(shift.id);
    const cells = [shift.site_name, day(shift), shift.local_range, shift.label, `${shift.signed_up}/${shift.seats}`];
    cells.forEach((text, i) => {
      const td = document.createElement("td");
      if (i === 4) td.className = "num";
      td.textContent = text;
      tr.append(td);
    });
    const td = document.createElement("td");
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "secondary";
    remove.textContent = t("Delete");
    remove.addEventListener("click", () => deleteShift(shift));
    td.append(remove);
    tr.append(td);
    body.append(tr);
    options.push(new Option(`#${shift.id} ${shift.site_name} ${day(shift)} ${shift.local_range}`, String(shift.id)));
  }
  $("shift-signup-shift").replaceChildren(...options);
  $("shifts-empty").hidden = shifts.length > 0;
}

async function addShift(event) {
  event.preventDefault();
  const site = sites.find((s) => String(s.id) === $("shift-site").value);
  if (!site || !$("shift-day").value) {
    status(t("Choose a site and a day."), true);
    return;
  }
  const start = zonedToUtc($("shift-day").value, $("shift-start").value, site.timezone);
  let end = zonedToUtc($("shift-day").value, $("shift-end").value, site.timezone);
  if (end <= start) {
    const next = new Date(`${$("shift-day").value}T00:00:00Z`);
    next.setUTCDate(next.getUTCDate() + 1);
    end = zonedToUtc(next.toISOString().slice(0, 10), $("shift-end").value, site.timezone);
  }
  const body = {
    campaign_id: Number(campaignId()),
    site_id: site.id,
    starts_at: start.toISOString(),
    ends_at: end.toISOString(),
    seats: Number($("shift-seats").value),
    label: $("shift-label").value.trim(),
  };
  const r = await api("/shifts", { method: "POST", body, csrf });
  if (!r.ok) {
    status(refusal(r), true);
    return;
  }
  status(t("Shift added: {site} {day} {hours}.", { site: r.data.site_name, day: day(r.data), hours: r.data.local_range }));
  await loadShifts();
}

async function deleteShift(shift) {
  const question = t("Delete shift #{id} and its {count} sign-up(s)?", { id: shift.id, count: shift.signed_up });
  if (!window.confirm(question)) return;
  const r = await api(`/shifts/${shift.id}`, { method: "DELETE", csrf });
  status(r.ok ? t("Shift #{id} deleted.", { id: shift.id }) : refusal(r), !r.ok);
  await loadShifts();
}

async function signUp(method) {
  const shift = $("shift-signup-shift").value;
  const agent = $("shift-signup-agent").value;
  if (!shift || !agent) {
    status(t("Choose a volunteer and a shift."), true);
    return;
  }
  const r = await api(`/shifts/${shift}/signups/${agent}`, { method, csrf });
  if (!r.ok) status(refusal(r), true);
  else status(method === "PUT" ? t("Signed up.") : t("Taken off the shift."));
  await loadShifts();
}

async function importFile(event) {
  event.preventDefault();
  const file = $("shift-import-file").files[0];
  $("shifts-refused").replaceChildren();
  if (!file) {
    status(t("Choose a file."), true);
    return;
  }
  const response = await fetch(`/shifts/signups/import?campaign_id=${encodeURIComponent(campaignId())}`, {
    method: "POST",
    headers: { Accept: "application/json", "Content-Type": "application/octet-stream", "X-CSRF-Token": csrf },
    credentials: "same-origin",
    cache: "no-store",
    body: file,
  });
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    status((data && data.message) || t("Refused ({status}).", { status: response.status }), true);
    for (const row of (data && data.rows) || []) {
      const li = document.createElement("li");
      const where = row.field ? t("Line {line} ({field})", { line: row.line, field: row.field }) : t("Line {line}", { line: row.line });
      li.textContent = `${where}: ${row.message}`;
      $("shifts-refused").append(li);
    }
    return;
  }
  status(t("{added} sign-ups imported ({already} already there).", { added: data.added, already: data.already }));
  $("shift-import").reset();
  await loadShifts();
}

async function start() {
  const section = $("shifts-admin");
  if (!section) return;
  const me = await whoAmI();
  if (!me || me.role !== "admin") return; // shifts are made by admins
  csrf = me.csrf_token;
  section.innerHTML = MARKUP;
  translateTree(section);
  section.hidden = false;
  $("shift-day").value = new Date().toISOString().slice(0, 10);
  $("shift-add").addEventListener("submit", addShift);
  $("shift-signup").addEventListener("submit", (event) => {
    event.preventDefault();
    signUp("PUT");
  });
  $("shift-signoff-btn").addEventListener("click", () => signUp("DELETE"));
  $("shift-import").addEventListener("submit", importFile);
  const campaign = $("campaign");
  campaign.addEventListener("change", loadSitesAndVolunteers);
  // organiser.js fills the campaign list: start once it has a campaign.
  if (campaign.value) {
    loadSitesAndVolunteers();
  } else {
    const watch = new MutationObserver(() => {
      if (campaign.value) {
        watch.disconnect();
        loadSitesAndVolunteers();
      }
    });
    watch.observe(campaign, { childList: true });
  }
}

start();
