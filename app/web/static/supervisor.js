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
import { addWaitCell, renderWaitCell, renderWaiting } from "/static/supervisor-waits.js";

const $ = (id) => document.getElementById(id);
// Service level target: 80 % of calls answered within the queue's threshold.
const SL_TARGET = 0.8;
const SL_WARN_BELOW = 0.1; // up to 10 points under the target: a warning, not an alarm
const FEED_MAX = 50;
const BUSY = new Set(["reserved", "on_call", "wrap_up"]);
const FEED_STATES = {
  available: "ready",
  reserved: "receiving a call",
  on_call: "on a call",
  wrap_up: "in wrap-up",
  paused: "paused",
  logged_out: "logged out",
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
  return a ? a.view.display_name : id === null || id === undefined ? "–" : `volunteer #${id}`;
}

function stateText(state) {
  return state === "available" ? "Ready" : stateLabel(state);
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

function serviceLevel(q) {
  const target = `target ${Math.round(SL_TARGET * 100)} %`;
  const within = `answered within ${q.service_level_threshold_seconds} s`;
  if (q.service_level === null || q.service_level === undefined) {
    return { level: "none", text: `– (${target})`, note: "no answered calls yet" };
  }
  const pct = Math.round(q.service_level * 100);
  if (q.service_level >= SL_TARGET) {
    return { level: "ok", text: `\u2714 ${pct} % (${target})`, note: `${within}: on target` };
  }
  if (q.service_level >= SL_TARGET - SL_WARN_BELOW) {
    return { level: "warn", text: `\u26A0 ${pct} % (${target})`, note: `${within}: slightly below` };
  }
  return { level: "bad", text: `\u2716 ${pct} % (${target})`, note: `${within}: below target` };
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
    setText(c.ringing, q.calls_ringing ? `${q.calls_ringing} ringing` : "");
    setText(c.longest, q.calls_waiting ? fmtSeconds(q.longest_wait_seconds) : "–");
    renderWaitCell(c.wait, q);
    const sl = serviceLevel(q);
    c.sl.dataset.level = sl.level;
    setText(c.sl, sl.text);
    setText(c.slNote, sl.note);
    setText(c.asa, fmtSeconds(q.average_speed_of_answer_seconds));
    setText(c.answered, q.answered);
    setText(c.abandoned, q.abandoned);
    setText(c.short, q.abandoned_short ? `${q.abandoned_short} very short` : "");
    const by = q.agents_by_state || {};
    const busy = (by.reserved || 0) + (by.on_call || 0) + (by.wrap_up || 0);
    setText(c.staff, `${by.available || 0} ready · ${busy} busy · ${by.paused || 0} paused`);
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

function actionButton(label, name, onClick, cls = "secondary small") {
  const b = document.createElement("button");
  b.type = "button";
  b.className = cls;
  b.textContent = label;
  b.dataset.action = label.toLowerCase().replaceAll(" ", "-");
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
    pause: actionButton("Pause", view.display_name, () =>
      act("force_pause", { agent_id: id, reason: ui.reason.value }, `${agentName(id)}: pause asked.`),
    ),
    ready: actionButton("Ready", view.display_name, () =>
      act("force_ready", { agent_id: id }, `${agentName(id)}: ready asked.`),
    ),
    logout: actionButton("Log out", view.display_name, () =>
      act("force_logout", { agent_id: id }, `${agentName(id)}: log-out asked.`),
    ),
    endWrap: actionButton("End wrap-up", view.display_name, () =>
      act("end_wrap_up", { agent_id: id }, `${agentName(id)}: wrap-up ended.`),
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
    v.pending_state && BUSY.has(v.state) ? `then ${stateText(v.pending_state).toLowerCase()}` : "",
  );
  setText(r.reason, v.state === "paused" ? reasonLabel(v.pause_reason) : "");
  setText(r.calls, v.calls_taken ?? "");
  setText(r.screen, v.screen ? "Open" : "Closed");
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
  const parts = ["available", "on_call", "reserved", "wrap_up", "paused", "logged_out"]
    .filter((s) => counts[s])
    .map((s) => `${counts[s]} ${stateText(s).toLowerCase()}`);
  setText(ui.counts, `${agents.size} volunteers: ${parts.join(", ")}`);
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
  const call = d.call_id ? `Call ${d.call_id}` : "A call";
  switch (msg.type) {
    case "call.received":
      return `${call} from ${callerText(d.caller, d.caller_issue)}`;
    case "call.queued":
      return `${call} queued in ${d.queue}`;
    case "call.offered":
      return `${call} offered to ${agentName(d.agent_id)} after ${fmtSeconds(d.wait_seconds)}`;
    case "call.connected":
      return `${call} answered by ${agentName(d.agent_id)} after ${fmtSeconds(d.wait_seconds)}`;
    case "call.wrap_up":
      return `${call} ended by the ${d.by === "caller" ? "caller" : "volunteer"}, talk ${fmtSeconds(d.talk_seconds)}`;
    case "call.completed":
      return `${call} completed${d.disposition ? ` (${d.disposition.replaceAll("_", " ")})` : ""}`;
    case "call.abandoned":
      return `${call} abandoned after ${fmtSeconds(d.wait_seconds)}`;
    case "callback.requested":
      return `${call}: callback requested by ${d.caller || "a caller"}, keeping the place of call ${d.from_call_id}`;
    case "callback.failed":
      return `${call}: callback failed after ${d.attempts} attempts`;
    case "callback.expired":
      return `${call}: callback expired`;
    case "call.requeued":
      return `${call} back to the head of the queue (${(d.reason || "").replaceAll("_", " ")})`;
    case "call.overflowed":
      return `${call} overflowed (${(d.reason || "").replaceAll("_", " ")})`;
    case "call.moved":
      return `${call} moved to ${d.to_queue}`;
    case "call.rejected":
      return `${call} rejected (${d.reason})`;
    case "call.transferred":
      return `${call} transferred to ${d.to_queue || d.to_number}`;
    case "agent.state": {
      const reason = d.state === "paused" && d.reason ? ` (${reasonLabel(d.reason)})` : "";
      return `${agentName(d.agent_id)} is ${FEED_STATES[d.state] || d.state}${reason}`;
    }
    case "agent.wrap_up_extended":
      return `${agentName(d.agent_id)} extended the wrap-up`;
    case "supervisor.alert":
      return `Alert: ${d.text}`;
    case "number.blocked":
      return `Number ${d.number} blocked (${d.strikes} strikes)`;
    case "supervisor.broadcast":
      return `Message from ${d.from}: ${d.text}`;
    default:
      return [d.call_id && `call ${d.call_id}`, d.agent_id && agentName(d.agent_id)]
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
      status((msg.data && msg.data.message) || "Refused.", true);
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
    status(`${agentName(args.agent_id)}: ${(err && err.message) || "refused"}`, true);
  }
}

ui.broadcastForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = ui.broadcastText.value.trim();
  ui.broadcastStatus.classList.remove("error");
  if (!text) {
    ui.broadcastStatus.classList.add("error");
    setText(ui.broadcastStatus, "Write a message first.");
    ui.broadcastText.focus();
    return;
  }
  try {
    await socket.command("broadcast", { text });
    ui.broadcastText.value = "";
    setText(ui.broadcastStatus, `Sent at ${new Date().toLocaleTimeString([], { hour12: false })}.`);
  } catch (err) {
    ui.broadcastStatus.classList.add("error");
    setText(ui.broadcastStatus, (err && err.message) || "Not sent.");
  }
});

// --- start --------------------------------------------------------------------------------

async function main() {
  const me = await signedInUser((text) => status(text, true));
  if (!me) return;
  setText(ui.who, me.campaign_id ? `${me.username} · campaign ${me.campaign_id}` : me.username);
  $("signout-btn").addEventListener("click", () => {
    if (socket) socket.stop();
    signOut(me.csrf_token);
  });
  if (me.role !== "supervisor" && me.role !== "admin") {
    showNotAllowed($("main"), { me, wanted: "supervisors" });
    return;
  }
  const banner = connectionBanner(ui.banners, ui.conn);
  socket = new ScreenSocket("supervisor", {
    csrf: me.csrf_token,
    onMessage,
    onStatus: banner,
    onFatal: (kind) => {
      if (kind === "forbidden") showNotAllowed($("main"), { me, wanted: "supervisors" });
      else goToLogin();
    },
  });
  socket.start();
  setInterval(() => {
    for (const entry of agents.values()) tickRow(entry);
  }, 1000);
}

main();
