// "My shifts" on the volunteer's page (docs/roster.md, Shifts): the upcoming shifts of
// their site (every site's when they have none), each with Sign up or Withdraw
// (PUT / DELETE /shifts/{id}/signups/{agent}); a shift that has started is left to a
// supervisor. Fills <section id="my-shifts"> of agent.html; refreshed every minute.

import { api, setText, whoAmI } from "/static/common.js";
import { language, t, translateTree } from "/static/i18n.js";

const REFRESH_MS = 60_000;
const section = document.getElementById("my-shifts");
let me = null;

/** "Sat 5 Dec", the shift's day on its site's calendar. */
export function shiftDay(shift) {
  return new Date(shift.starts_at).toLocaleDateString(language() === "fr" ? "fr-FR" : "en-GB", {
    weekday: "short",
    day: "numeric",
    month: "short",
    timeZone: shift.timezone,
  });
}

function status(text, isError = false) {
  const line = section.querySelector(".status-line");
  line.classList.toggle("error", isError);
  setText(line, text);
}

function item(shift) {
  const li = document.createElement("li");
  li.className = "shift-item";
  li.dataset.shiftId = String(shift.id);
  const started = Date.parse(shift.starts_at) <= Date.now();
  const text = document.createElement("span");
  const label = shift.label ? ` · ${shift.label}` : "";
  text.textContent = `${shiftDay(shift)} ${shift.local_range} · ${shift.site_name}${label} · ${shift.signed_up}/${shift.seats}`;
  const button = document.createElement("button");
  button.type = "button";
  button.className = shift.mine ? "secondary" : "";
  if (shift.mine) {
    button.textContent = started ? t("Signed up") : t("Withdraw");
  } else {
    button.textContent = shift.full ? t("Full") : started ? t("Started") : t("Sign up");
  }
  button.disabled = started || (!shift.mine && shift.full);
  button.addEventListener("click", () => change(shift));
  li.append(text, " ", button);
  return li;
}

async function load() {
  const r = await api(`/agents/${encodeURIComponent(me.agent_id)}/shifts`);
  const list = section.querySelector("ul");
  if (!r.ok) {
    status((r.data && r.data.message) || t("Shifts unavailable ({status}).", { status: r.status }), true);
    return;
  }
  list.replaceChildren(...r.data.map(item));
  section.querySelector(".placeholder").hidden = r.data.length > 0;
}

async function change(shift) {
  const method = shift.mine ? "DELETE" : "PUT";
  const r = await api(`/shifts/${shift.id}/signups/${me.agent_id}`, { method, csrf: me.csrf_token });
  if (!r.ok) {
    status((r.data && r.data.message) || t("Refused ({status}).", { status: r.status }), true);
  } else {
    status(shift.mine ? t("You withdrew from the shift.") : t("You are signed up."));
  }
  await load();
}

async function start() {
  if (!section) return;
  me = await whoAmI();
  if (!me || me.role !== "agent" || !me.agent_id) return;
  section.innerHTML = /* html */ `
    <h2 id="my-shifts-title">My shifts</h2>
    <p class="hint">Upcoming shifts of your site, in its time. Sign up before a shift starts.</p>
    <ul class="shift-list" aria-labelledby="my-shifts-title"></ul>
    <p class="placeholder">No upcoming shift.</p>
    <p class="status-line" role="status"></p>`;
  translateTree(section);
  section.hidden = false;
  await load();
  setInterval(load, REFRESH_MS);
}

start();
