// The supervisor page's surge panel (app/surge, docs/surge.md): each queue's surge
// state (since when, which threshold), its standby volunteers and a button to page
// them by hand; the volunteers' standby sign-up; the pages sent, who answered and
// when. REST: /queues/{id}/surge, /queues/{id}/surge/page, /agents/{id}/standby,
// /pages. Refreshed on the surge and page events of the supervisor socket
// (supervisor.js re-dispatches every message as `pledgeline:message`).

import { api, whoAmI } from "/static/common.js";
import { N_, t } from "/static/i18n.js";

const $ = (id) => document.getElementById(id);
const REASONS = {
  waiting: N_("calls waiting"),
  expected_wait: N_("expected wait"),
  service_level: N_("service level (5 min)"),
};
const REFRESH_EVENTS = new Set([
  "queue.surge_started",
  "queue.surge_ended",
  "queue.surge_configured",
  "agent.paged",
  "agent.page_answered",
  "agent.standby_changed",
]);

let me = null;
let pending = null;

function clock(iso) {
  return iso ? new Date(iso).toLocaleTimeString([], { hour12: false }) : "";
}

function say(text, isError = false) {
  const line = $("surge-status");
  line.classList.toggle("error", isError);
  line.textContent = text;
}

function td(text) {
  const cell = document.createElement("td");
  cell.textContent = text;
  return cell;
}

function fmtWait(seconds) {
  if (seconds === null || seconds === undefined) return t("unknown");
  return `${Math.round(seconds)} s`;
}

function queueRow(s) {
  const tr = document.createElement("tr");
  tr.dataset.queueId = String(s.queue_id);
  const name = document.createElement("th");
  name.scope = "row";
  name.textContent = s.queue;
  const state = document.createElement("td");
  const badge = document.createElement("span");
  badge.className = "surge-state";
  badge.dataset.surge = String(Boolean(s.surge));
  const reason = REASONS[s.reason] ? t(REASONS[s.reason]) : s.reason;
  if (!s.configured) badge.textContent = t("no thresholds");
  else if (s.surge) badge.textContent = t("SURGE since {time} ({reason})", { time: clock(s.since), reason });
  else badge.textContent = s.since ? t("normal since {time}", { time: clock(s.since) }) : t("normal");
  state.append(badge);
  const now = s.measures_now || {};
  const sl = now.service_level === null || now.service_level === undefined
    ? "—" : `${Math.round(now.service_level * 100)} %`;
  const standby = s.standby.map((v) => `${v.name} (${v.standby_as})`).join(", ") || t("none");
  const action = document.createElement("td");
  const button = document.createElement("button");
  button.type = "button";
  button.className = "small";
  button.textContent = t("Page standby volunteers");
  button.disabled = s.standby.length === 0;
  button.addEventListener("click", () => pageQueue(s));
  action.append(button);
  tr.append(
    name, state, td(String(now.waiting ?? "—")), td(fmtWait(now.expected_wait_seconds)),
    td(sl), td(standby), action,
  );
  return tr;
}

function pageRow(p) {
  const tr = document.createElement("tr");
  tr.dataset.pageId = String(p.id);
  tr.append(
    td(p.agent_name), td(clock(p.paged_at)), td(p.paged_by), td(p.standby_as), td(p.sms),
    td(p.answered_at ? t("coming ({time})", { time: clock(p.answered_at) }) : t("no answer yet")),
  );
  tr.dataset.answered = String(Boolean(p.answered_at));
  return tr;
}

function standbyRow(agent, signedUp) {
  const tr = document.createElement("tr");
  tr.dataset.agentId = String(agent.id);
  const action = document.createElement("td");
  const button = document.createElement("button");
  button.type = "button";
  button.className = "secondary small";
  button.textContent = signedUp ? t("Take off standby") : t("Put on standby");
  button.addEventListener("click", () => setStandby(agent, !signedUp));
  action.append(button);
  tr.append(td(agent.display_name), td(signedUp ? t("standby") : "—"), action);
  return tr;
}

async function pageQueue(s) {
  const r = await api(`/queues/${s.queue_id}/surge/page`, {
    method: "POST", body: {}, csrf: me.csrf_token,
  });
  if (!r.ok) {
    say((r.data && r.data.message) || t("Refused."), true);
  } else {
    const n = r.data.paged_agent_ids.length;
    const quiet = r.data.quiet_agent_ids.length;
    say(
      quiet
        ? t("{queue}: {count} volunteer(s) paged, {quiet} paged recently (quiet period).", {
            queue: s.queue,
            count: n,
            quiet,
          })
        : t("{queue}: {count} volunteer(s) paged.", { queue: s.queue, count: n }),
    );
  }
  await refresh();
}

async function setStandby(agent, standby) {
  const r = await api(`/agents/${agent.id}/standby`, {
    method: "PUT", body: { standby }, csrf: me.csrf_token,
  });
  const done = standby
    ? t("{name}: on standby.", { name: agent.display_name })
    : t("{name}: off standby.", { name: agent.display_name });
  say(r.ok ? done : (r.data && r.data.message) || t("Refused."), !r.ok);
  await refresh();
}

async function refresh() {
  if (!me) return;
  const scope = me.campaign_id ? `?campaign_id=${me.campaign_id}` : "";
  const [queues, pages, agents] = await Promise.all([
    api(`/queues${scope}`), api(`/pages${scope}`), api(`/agents${scope}`),
  ]);
  if (!queues.ok || !pages.ok || !agents.ok) {
    say(t("The surge panel could not be read."), true);
    return;
  }
  const states = await Promise.all(queues.data.map((q) => api(`/queues/${q.id}/surge`)));
  const surges = states.filter((r) => r.ok).map((r) => r.data);
  $("surge-body").replaceChildren(...surges.map(queueRow));
  $("pages-body").replaceChildren(...pages.data.map(pageRow));
  $("no-pages").hidden = pages.data.length > 0;
  const signedUp = new Set();
  for (const s of surges) for (const v of s.standby) if (v.standby_as === "standby") signedUp.add(v.agent_id);
  $("standby-body").replaceChildren(...agents.data.map((a) => standbyRow(a, signedUp.has(a.id))));
}

function later() {
  // Several events in a burst: one refresh.
  if (pending) return;
  pending = setTimeout(async () => {
    pending = null;
    await refresh();
  }, 300);
}

document.addEventListener("pledgeline:message", (event) => {
  const msg = event.detail;
  if (msg && (REFRESH_EVENTS.has(msg.type) || msg.type === "snapshot")) later();
});

async function main() {
  me = await whoAmI().catch(() => null);
  if (!me || (me.role !== "supervisor" && me.role !== "admin")) return;
  await refresh();
  // The measures and who is on a break move without a surge event: a look every 10 s.
  setInterval(refresh, 10000);
}

main();
