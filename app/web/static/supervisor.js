// The supervisor screen: live queue figures (from the once-a-second ``stats``
// messages, no polling), volunteers with ticking time in state and actions,
// a feed of the last 50 events, and broadcasts to the volunteers.

import {
  ScreenSocket,
  callerText,
  clock,
  connectionBanner,
  fmtClock,
  fmtDuration,
  fmtSeconds,
  goToLogin,
  reasonLabel,
  setText,
  showNotAllowed,
  signOut,
  stateLabel,
  signedInUser,
} from "/static/common.js";
import { N_, t } from "/static/i18n.js";
import { addWaitCell, renderWaitCell, renderWaiting } from "/static/supervisor-waits.js";

const $ = (id) => document.getElementById(id);
// Service level colours when the server names none: 80 % of calls answered within the
// queue's threshold is on target, down to 70 % a warning, below an alarm.
const SL_TARGET_PERCENT = 80;
const SL_AMBER_PERCENT = 70;
const FEED_MAX = 50;
const BUSY = new Set(["reserved", "on_call", "consulting", "wrap_up"]);
const FEED_STATES = {
  available: N_("ready"),
  reserved: N_("receiving a call"),
  on_call: N_("on a call"),
  consulting: N_("consulting a specialist"),
  wrap_up: N_("in wrap-up"),
  paused: N_("paused"),
  logged_out: N_("logged out"),
};

const ui = {
  queues: $("queues-body"),
  queuesEmpty: $("queues-empty"),
  body: $("agents-body"),
  counts: $("agent-counts"),
  reason: $("force-reason"),
  actionStatus: $("action-status"),
  feed: $("feed"),
  broadcastForm: $("broadcast-form"),
  broadcastText: $("broadcast-text"),
  broadcastStatus: $("broadcast-status"),
  who: $("who"),
  conn: $("conn-status"),
  banners: $("banners"),
};

const agents = new Map(); // id -> {view, eventSeq, row}
const queueCards = new Map(); // queue_id -> {card: <tr>, cells}
let socket = null;

function agentName(id) {
  const a = agents.get(id);
  if (a) return a.view.display_name;
  return id === null || id === undefined ? "–" : t("volunteer #{id}", { id });
}

function stateText(state) {
  return state === "available" ? t("Ready") : stateLabel(state);
}

// --- queues -------------------------------------------------------------------------

function cell(tr, cls) {
  const td = document.createElement("td");
  if (cls) td.className = cls;
  tr.append(td);
  return td;
}

function span(parent, metric, cls) {
  const el = document.createElement("span");
  el.dataset.metric = metric;
  if (cls) el.className = cls;
  parent.append(el);
  return el;
}

function queueRow(q) {
  const tr = document.createElement("tr");
  tr.dataset.queue = q.queue;
  tr.dataset.queueId = String(q.queue_id);
  const name = document.createElement("th");
  name.scope = "row";
  const title = document.createElement("span");
  title.className = "queue-name";
  title.textContent = q.queue;
  name.append(title);
  tr.append(name);
  const cells = { staff: span(name, "staff", "sub") };
  const waiting = cell(tr, "num");
  cells.waiting = span(waiting, "waiting", "big");
  cells.ringing = span(waiting, "ringing", "sub");
  cells.longest = span(cell(tr, "num"), "longest", "big");
  cells.wait = addWaitCell(tr);
  const sl = cell(tr);
  cells.sl = span(sl, "sl", "sl");
  cells.slNote = span(sl, "sl-note", "sub");
  cells.asa = span(cell(tr, "num"), "asa", "big");
  cells.answered = span(cell(tr, "num"), "answered", "big");
  const abandoned = cell(tr, "num");
  cells.abandoned = span(abandoned, "abandoned", "big");
  cells.short = span(abandoned, "abandoned-short", "sub");
  return { card: tr, cells };
}

// Green at or above the queue's target share answered in time, amber down to its
// amber level, red below; the figure said in words beside the colour.
function serviceLevel(q) {
  const targetPercent = q.service_level_target_percent ?? SL_TARGET_PERCENT;
  const amberPercent = q.service_level_amber_percent ?? SL_AMBER_PERCENT;
  // No-break spaces inside the figure and the target: the badge wraps between them only.
  const glue = (text) => text.replace(/ /g, "\u00a0");
  const target = glue(t("target {percent} %", { percent: targetPercent }));
  const seconds = q.service_level_threshold_seconds;
  if (q.service_level === null || q.service_level === undefined) {
    return { level: "none", text: `– (${target})`, note: t("no answered calls yet") };
  }
  const pct = Math.round(q.service_level * 100);
  const words = { percent: pct, seconds, target: targetPercent, amber: amberPercent };
  if (pct >= targetPercent) {
    const note = t("{percent} % answered within {seconds} s: on target ({target} %)", words);
    return { level: "ok", text: `\u2714\u00a0${pct}\u00a0% (${target})`, note };
  }
  if (pct >= amberPercent) {
    const note = t("{percent} % answered within {seconds} s: below the target of {target} %", words);
    return { level: "warn", text: `\u26A0\u00a0${pct}\u00a0% (${target})`, note };
  }
  const note = t("{percent} % answered within {seconds} s: under the alarm level of {amber} %", words);
  return { level: "bad", text: `\u2716\u00a0${pct}\u00a0% (${target})`, note };
}

function renderQueues(list) {
  const seen = new Set();
  for (const q of list) {
    seen.add(q.queue_id);
    let entry = queueCards.get(q.queue_id);
    if (!entry) {
      entry = queueRow(q);
      queueCards.set(q.queue_id, entry);
      ui.queues.append(entry.card);
    }
    const c = entry.cells;
    setText(c.waiting, q.calls_waiting);
    setText(c.ringing, q.calls_ringing ? t("{count} ringing", { count: q.calls_ringing }) : "");
    setText(c.longest, q.calls_waiting ? fmtSeconds(q.longest_wait_seconds) : "–");
    renderWaitCell(c.wait, q);
    const sl = serviceLevel(q);
    c.sl.dataset.level = sl.level;
    setText(c.sl, sl.text);
    setText(c.slNote, sl.note);
    setText(c.asa, fmtSeconds(q.average_speed_of_answer_seconds));
    setText(c.answered, q.answered);
    setText(c.abandoned, q.abandoned);
    const short = q.abandoned_short || 0;
    setText(c.short, short === 1 ? t("1 very short") : short ? t("{count} very short", { count: short }) : "");
    const by = q.agents_by_state || {};
    const busy = (by.reserved || 0) + (by.on_call || 0) + (by.consulting || 0) + (by.wrap_up || 0);
    setText(
      c.staff,
      t("{ready} ready · {busy} busy · {paused} paused", {
        ready: by.available || 0,
        busy,
        paused: by.paused || 0,
      }),
    );
  }
  for (const [id, entry] of queueCards) {
    if (!seen.has(id)) {
      entry.card.remove();
      queueCards.delete(id);
    }
  }
  ui.queuesEmpty.hidden = queueCards.size > 0;
}

// --- volunteers -----------------------------------------------------------------------

function actionButton(action, label, name, onClick, cls = "secondary small") {
  const b = document.createElement("button");
  b.type = "button";
  b.className = cls;
  b.textContent = label;
  b.dataset.action = action;
  b.addEventListener("click", onClick);
  b.setAttribute("aria-label", `${label}: ${name}`);
  return b;
}

function makeRow(view) {
  const tr = document.createElement("tr");
  tr.dataset.agentId = String(view.id);
  const name = document.createElement("th");
  name.scope = "row";
  const stateCell = document.createElement("td");
  const badge = document.createElement("span");
  badge.className = "badge";
  const pending = document.createElement("span");
  pending.className = "pending";
  stateCell.append(badge, pending);
  const time = document.createElement("td");
  time.className = "num";
  time.dataset.col = "time";
  const reason = document.createElement("td");
  reason.dataset.col = "reason";
  const calls = document.createElement("td");
  calls.className = "num";
  const screen = document.createElement("td");
  const actions = document.createElement("td");
  actions.className = "row-actions";
  const id = view.id;
  const buttons = {
    pause: actionButton("pause", t("Pause"), view.display_name, () =>
      act(
        "force_pause",
        { agent_id: id, reason: ui.reason.value },
        t("{name}: pause asked.", { name: agentName(id) }),
      ),
    ),
    ready: actionButton("ready", t("Ready"), view.display_name, () =>
      act("force_ready", { agent_id: id }, t("{name}: ready asked.", { name: agentName(id) })),
    ),
    logout: actionButton("log-out", t("Log out"), view.display_name, () =>
      act("force_logout", { agent_id: id }, t("{name}: log-out asked.", { name: agentName(id) })),
    ),
    endWrap: actionButton("end-wrap-up", t("End wrap-up"), view.display_name, () =>
      act("end_wrap_up", { agent_id: id }, t("{name}: wrap-up ended.", { name: agentName(id) })),
    ),
  };
  actions.append(buttons.pause, buttons.ready, buttons.logout, buttons.endWrap);
  tr.append(name, stateCell, time, reason, calls, screen, actions);
  return { tr, name, badge, pending, time, reason, calls, screen, buttons };
}

function updateRow(entry) {
  const v = entry.view;
  const r = entry.row;
  setText(r.name, v.display_name);
  r.badge.dataset.state = v.state;
  setText(r.badge, stateText(v.state));
  setText(
    r.pending,
    v.pending_state && BUSY.has(v.state) ? t("then {state}", { state: stateText(v.pending_state).toLowerCase() }) : "",
  );
  setText(r.reason, v.state === "paused" ? reasonLabel(v.pause_reason) : "");
  setText(r.calls, v.calls_taken ?? "");
  setText(r.screen, v.screen ? t("Open") : t("Closed"));
  const busy = BUSY.has(v.state);
  r.buttons.pause.hidden = !(v.state === "available" || (busy && v.pending_state !== "paused"));
  r.buttons.ready.hidden = !(v.state === "paused" || (busy && v.pending_state));
  r.buttons.logout.hidden = v.state === "logged_out" || v.pending_state === "logged_out";
  r.buttons.endWrap.hidden = v.state !== "wrap_up";
  tickRow(entry);
}

function tickRow(entry) {
  const since = entry.view.state_since;
  setText(entry.row.time, since ? fmtDuration(clock.since(since)) : "");
}

function renderCounts() {
  const counts = {};
  for (const { view } of agents.values()) counts[view.state] = (counts[view.state] || 0) + 1;
  const parts = ["available", "on_call", "consulting", "reserved", "wrap_up", "paused", "logged_out"]
    .filter((s) => counts[s])
    .map((s) => `${counts[s]} ${stateText(s).toLowerCase()}`);
  setText(ui.counts, t("{count} volunteers: {states}", { count: agents.size, states: parts.join(", ") }));
}

function applyAgents(list, seq) {
  const seen = new Set();
  list.forEach((view) => {
    seen.add(view.id);
    let entry = agents.get(view.id);
    if (!entry) {
      entry = { view: { ...view }, eventSeq: -1, row: makeRow(view) };
      agents.set(view.id, entry);
    } else if (typeof seq === "number" && entry.eventSeq > seq) {
      // An event newer than these figures already moved this volunteer on.
      entry.view = {
        ...view,
        state: entry.view.state,
        pause_reason: entry.view.pause_reason,
        state_since: entry.view.state_since,
        pending_state: entry.view.pending_state,
      };
    } else {
      entry.view = { ...view };
    }
    updateRow(entry);
  });
  for (const [id, entry] of agents) {
    if (!seen.has(id)) {
      entry.row.tr.remove();
      agents.delete(id);
    }
  }
  // Keep the table in the server's order without re-creating rows (focus stays put).
  let previous = null;
  for (const view of list) {
    const tr = agents.get(view.id).row.tr;
    const expected = previous ? previous.nextSibling : ui.body.firstChild;
    if (expected !== tr) ui.body.insertBefore(tr, expected);
    previous = tr;
  }
  renderCounts();
}

function applyFigures(data, seq) {
  renderQueues(data.queues || []);
  renderWaiting(data.queues || []);
  applyAgents(data.agents || [], seq);
}

// --- events -----------------------------------------------------------------------------

function describe(msg) {
  const d = msg.data || {};
  const call = d.call_id ? t("Call {call_id}", { call_id: d.call_id }) : t("A call");
  const agent = agentName(d.agent_id);
  const wait = fmtSeconds(d.wait_seconds);
  const reason = (d.reason || "").replaceAll("_", " ");
  switch (msg.type) {
    case "call.received":
      return t("{call} from {caller}", { call, caller: callerText(d.caller, d.caller_issue) });
    case "call.queued":
      return t("{call} queued in {queue}", { call, queue: d.queue });
    case "call.offered":
      return t("{call} offered to {agent} after {wait}", { call, agent, wait });
    case "call.connected":
      return t("{call} answered by {agent} after {wait}", { call, agent, wait });
    case "call.wrap_up": {
      const talk = fmtSeconds(d.talk_seconds);
      return d.by === "caller"
        ? t("{call} ended by the caller, talk {talk}", { call, talk })
        : t("{call} ended by the volunteer, talk {talk}", { call, talk });
    }
    case "call.completed":
      return d.disposition
        ? t("{call} completed ({disposition})", {
            call,
            disposition: d.disposition.replaceAll("_", " "),
          })
        : t("{call} completed", { call });
    case "call.abandoned":
      return t("{call} abandoned after {wait}", { call, wait });
    case "callback.requested":
      return t("{call}: callback requested by {caller}, keeping the place of call {from_call_id}", {
        call,
        caller: d.caller || t("a caller"),
        from_call_id: d.from_call_id,
      });
    case "callback.failed":
      return t("{call}: callback failed after {attempts} attempts", { call, attempts: d.attempts });
    case "callback.expired":
      return t("{call}: callback expired", { call });
    case "call.requeued":
      return t("{call} back to the head of the queue ({reason})", { call, reason });
    case "call.overflowed":
      return t("{call} overflowed ({reason})", { call, reason });
    case "call.moved":
      return t("{call} moved to {queue}", { call, queue: d.to_queue });
    case "call.rejected":
      return t("{call} rejected ({reason})", { call, reason: d.reason });
    case "call.transferred":
      return t("{call} transferred to {target}", { call, target: d.to_queue || d.to_number });
    case "agent.state": {
      const why = d.state === "paused" && d.reason ? ` (${reasonLabel(d.reason)})` : "";
      const state = FEED_STATES[d.state] ? t(FEED_STATES[d.state]) : d.state;
      return t("{agent} is {state}", { agent, state }) + why;
    }
    case "agent.wrap_up_extended":
      return t("{agent} extended the wrap-up", { agent });
    case "supervisor.alert":
      return t("Alert: {text}", { text: d.text });
    case "supervisor.alert_acknowledged":
      return t("Alert acknowledged by {name}", { name: d.by });
    case "number.blocked":
      return t("Number {number} blocked ({strikes} strikes)", {
        number: d.number,
        strikes: d.strikes,
      });
    case "supervisor.broadcast":
      return t("Message from {sender}: {text}", { sender: d.from, text: d.text });
    default:
      return [d.call_id && t("call {call_id}", { call_id: d.call_id }), d.agent_id && agent]
        .filter(Boolean)
        .join(", ");
  }
}

function addToFeed(msg) {
  const li = document.createElement("li");
  li.dataset.type = msg.type;
  const time = document.createElement("time");
  time.dateTime = msg.at;
  time.textContent = fmtClock(msg.at);
  const type = document.createElement("span");
  type.className = "ev-type";
  type.textContent = msg.type;
  const text = document.createElement("div");
  text.textContent = describe(msg);
  li.append(time, type, text);
  ui.feed.prepend(li);
  while (ui.feed.children.length > FEED_MAX) ui.feed.lastElementChild.remove();
}

function onAgentEvent(msg) {
  const d = msg.data || {};
  const entry = agents.get(d.agent_id);
  if (!entry) return;
  if (msg.type === "agent.state") {
    entry.view.state = d.state;
    entry.view.pause_reason = d.reason;
    entry.view.state_since = msg.at;
    if (!BUSY.has(d.state)) entry.view.pending_state = null;
    entry.eventSeq = msg.seq;
    updateRow(entry);
    renderCounts();
  }
}

function onMessage(msg) {
  // Other panels of this page (alerts and blocklist: supervisor-rules.js) listen here.
  document.dispatchEvent(new CustomEvent("pledgeline:message", { detail: msg }));
  switch (msg.type) {
    case "snapshot":
    case "stats":
      applyFigures(msg.data, msg.seq);
      return;
    case "resync":
      return;
    case "error":
      status((msg.data && msg.data.message) || t("Refused."), true);
      return;
    default:
      onAgentEvent(msg);
      addToFeed(msg);
  }
}

// --- actions ------------------------------------------------------------------------------

function status(text, isError = false) {
  ui.actionStatus.classList.toggle("error", isError);
  setText(ui.actionStatus, text);
}

async function act(command, args, done) {
  status("");
  try {
    await socket.command(command, args);
    status(done);
  } catch (err) {
    const why = (err && err.message) || t("refused");
    status(t("{name}: {why}", { name: agentName(args.agent_id), why }), true);
  }
}

ui.broadcastForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = ui.broadcastText.value.trim();
  ui.broadcastStatus.classList.remove("error");
  if (!text) {
    ui.broadcastStatus.classList.add("error");
    setText(ui.broadcastStatus, t("Write a message first."));
    ui.broadcastText.focus();
    return;
  }
  try {
    await socket.command("broadcast", { text });
    ui.broadcastText.value = "";
    const at = new Date().toLocaleTimeString([], { hour12: false });
    setText(ui.broadcastStatus, t("Sent at {time}.", { time: at }));
  } catch (err) {
    ui.broadcastStatus.classList.add("error");
    setText(ui.broadcastStatus, (err && err.message) || t("Not sent."));
  }
});

// --- start --------------------------------------------------------------------------------

async function main() {
  const me = await signedInUser((text) => status(text, true));
  if (!me) return;
  setText(
    ui.who,
    me.campaign_id
      ? t("{username} · campaign {campaign_id}", {
          username: me.username,
          campaign_id: me.campaign_id,
        })
      : me.username,
  );
  $("signout-btn").addEventListener("click", () => {
    if (socket) socket.stop();
    signOut(me.csrf_token);
  });
  if (me.role !== "supervisor" && me.role !== "admin") {
    showNotAllowed($("main"), { me, wanted: N_("supervisors") });
    return;
  }
  const banner = connectionBanner(ui.banners, ui.conn);
  socket = new ScreenSocket("supervisor", {
    csrf: me.csrf_token,
    onMessage,
    onStatus: banner,
    onFatal: (kind) => {
      if (kind === "forbidden") showNotAllowed($("main"), { me, wanted: N_("supervisors") });
      else goToLogin();
    },
  });
  socket.start();
  setInterval(() => {
    for (const entry of agents.values()) tickRow(entry);
  }, 1000);
}

main();
