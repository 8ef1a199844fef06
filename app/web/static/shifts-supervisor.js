// Shifts on the supervisor screen (docs/roster.md, Shifts): the shifts running now or
// starting within the next 24 hours, of the supervisor's campaign (a site-scoped
// supervisor: its site's; the server scopes GET /shifts), each with who signed up,
// who checked in (their login) and when, and the late and no-show lists (GET
// /shifts/{id}/attendance). Refreshed every 30 seconds and on the Refresh button.
// Fills <section id="shifts-supervisor"> of supervisor.html.

import { api, setText, whoAmI } from "/static/common.js";
import { language, N_, t, translateTree } from "/static/i18n.js";

const REFRESH_MS = 30_000;
const AHEAD_MS = 24 * 3600 * 1000;
const STATUS_TEXT = { expected: N_("expected"), on_time: N_("in, on time"), late: N_("late"), no_show: N_("no-show") };
const section = document.getElementById("shifts-supervisor");
let campaignId = null;

function locale() {
  return language() === "fr" ? "fr-FR" : "en-GB";
}

function time(iso, timeZone) {
  if (!iso) return "";
  return new Date(iso).toLocaleTimeString(locale(), { hour: "2-digit", minute: "2-digit", timeZone });
}

function day(shift) {
  return new Date(shift.starts_at).toLocaleDateString(locale(), {
    weekday: "short", day: "numeric", month: "short", timeZone: shift.timezone,
  });
}

function names(list, extra) {
  return list.length ? list.map((v) => v.display_name + (extra ? extra(v) : "")).join(", ") : t("none");
}

function block(att) {
  const { shift } = att;
  const div = document.createElement("div");
  div.className = "shift-block";
  div.dataset.shiftId = String(shift.id);
  const h3 = document.createElement("h3");
  const label = shift.label ? ` · ${shift.label}` : "";
  const inNow = att.volunteers.filter((v) => v.logged_in).length;
  const counts = t("{signed}/{seats} signed up, {in} logged in", {
    signed: shift.signed_up,
    seats: shift.seats,
    in: inNow,
  });
  h3.textContent = `${shift.site_name} · ${day(shift)} ${shift.local_range}${label} · ${counts}`;
  const late = document.createElement("p");
  late.className = "shift-late";
  const minutes = (v) => ` (${t("{minutes} min", { minutes: Math.round(v.late_seconds / 60) })})`;
  late.textContent = t("Late: {names}", { names: names(att.late, minutes) });
  const absent = document.createElement("p");
  absent.className = "shift-no-show";
  absent.textContent = t("No-show: {names}", { names: names(att.no_show) });
  const table = document.createElement("table");
  table.innerHTML = /* html */ `<thead><tr><th>Volunteer</th><th>Status</th><th>In</th><th>Out</th></tr></thead>`;
  translateTree(table);
  const body = document.createElement("tbody");
  for (const v of att.volunteers) {
    const tr = document.createElement("tr");
    tr.dataset.agentId = String(v.agent_id);
    tr.dataset.status = v.status;
    const out = v.logged_in ? t("logged in") : time(v.checked_out_at, shift.timezone);
    for (const text of [v.display_name, t(STATUS_TEXT[v.status] || v.status), time(v.checked_in_at, shift.timezone), out]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    body.append(tr);
  }
  table.append(body);
  const wrap = document.createElement("div");
  wrap.className = "table-wrap";
  wrap.append(table);
  div.append(h3, late, absent, wrap);
  return div;
}

async function load() {
  const now = Date.now();
  const since = encodeURIComponent(new Date(now).toISOString());
  const until = encodeURIComponent(new Date(now + AHEAD_MS).toISOString());
  const r = await api(`/shifts?campaign_id=${campaignId}&since=${since}&until=${until}`);
  const list = section.querySelector(".shift-blocks");
  const line = section.querySelector(".status-line");
  if (!r.ok) {
    line.classList.add("error");
    setText(line, (r.data && r.data.message) || t("Shifts unavailable ({status}).", { status: r.status }));
    return;
  }
  const answers = await Promise.all(r.data.map((shift) => api(`/shifts/${shift.id}/attendance`)));
  list.replaceChildren(...answers.filter((a) => a.ok).map((a) => block(a.data)));
  section.querySelector(".placeholder").hidden = r.data.length > 0;
  line.classList.remove("error");
  setText(line, t("Updated at {time}.", { time: new Date().toLocaleTimeString(locale()) }));
}

async function start() {
  if (!section) return;
  const me = await whoAmI();
  if (!me || !["supervisor", "admin"].includes(me.role)) return;
  campaignId = me.campaign_id;
  if (!campaignId) {
    const campaigns = await api("/campaigns");
    campaignId = campaigns.ok && campaigns.data.length ? campaigns.data[0].id : null;
  }
  if (!campaignId) return;
  section.innerHTML = /* html */ `
    <h2 id="shifts-supervisor-title">Shifts: who came</h2>
    <p class="hint">Shifts running now or in the next 24 hours. A volunteer checks in by logging in;
      late: in after the start plus the grace; no-show: not in by then.</p>
    <button type="button" class="secondary shifts-refresh">Refresh</button>
    <div class="shift-blocks"></div>
    <p class="placeholder">No shift now or in the next 24 hours.</p>
    <p class="status-line" role="status"></p>`;
  translateTree(section);
  section.hidden = false;
  section.querySelector(".shifts-refresh").addEventListener("click", load);
  await load();
  setInterval(load, REFRESH_MS);
}

start();
