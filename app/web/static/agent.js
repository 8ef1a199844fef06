// The volunteer screen: state, incoming-call pop (auto-answer after the queue's
// breath: flash, tone, countdown, Answer now), call timer, hang-up, wrap-up with a
// disposition, supervisor messages (kept until dismissed), shortcuts, reconnection.
// When the call is over (wrap-up ended or timed out, or the call transferred) the
// caller's details leave the screen: the panels are told through the bus.

import {
  ScreenSocket,
  callerText,
  clock,
  connectionBanner,
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
import { publish, screen } from "/static/agent-bus.js";
import "/static/consult-panel.js"; // the warm hand-over's panel (Needs support)

const $ = (id) => document.getElementById(id);
const BUSY = new Set(["reserved", "on_call", "consulting", "wrap_up"]);
const SHORTCUTS_KEY = "pledgeline.agent.shortcuts";
// Supervisors' messages not yet dismissed: shown again after a reload (this tab only).
const BROADCASTS_KEY = "pledgeline.agent.broadcasts";
const HINTS = {
  logged_out: N_("Press Ready to start taking calls."),
  available: N_("Waiting for a call. Calls are answered automatically."),
  reserved: N_("A call is coming through…"),
  on_call: N_("Talk to the caller; press Hang up when the call is over."),
  consulting: N_("Waiting for a specialist…"),
  wrap_up: N_("Choose how the call ended, then press End wrap-up."),
  paused: N_("You will not get calls. Press Ready when you are back."),
};

const ui = {
  badge: $("state-badge"),
  stateTime: $("state-time"),
  stateHint: $("state-hint"),
  pendingNote: $("pending-note"),
  ready: $("ready-btn"),
  pause: $("pause-btn"),
  pauseReason: $("pause-reason"),
  logout: $("logout-btn"),
  status: $("command-status"),
  pop: $("call-pop"),
  noCall: $("no-call"),
  callBody: $("call-body"),
  caller: $("call-caller"),
  wait: $("call-wait"),
  queue: $("call-queue"),
  timer: $("call-timer"),
  answer: $("answer-btn"),
  callCard: $("call-card"),
  breath: $("breath"),
  breathCountdown: $("breath-countdown"),
  answerNow: $("answer-now-btn"),
  tone: $("offer-tone"),
  callKind: $("call-kind"),
  callKindTerm: $("call-kind-term"),
  callKindNote: $("call-kind-note"),
  hangup: $("hangup-btn"),
  wrapup: $("wrapup"),
  countdown: $("wrapup-countdown"),
  wrapupError: $("wrapup-error"),
  endWrapup: $("end-wrapup-btn"),
  extend: $("extend-btn"),
  shortcuts: $("shortcuts-toggle"),
  who: $("who"),
  banners: $("banners"),
  broadcasts: $("broadcasts"),
  conn: $("conn-status"),
};

const S = {
  me: null,
  agent: { state: "logged_out", pause_reason: null, state_since: null, display_name: "" },
  // {id, state, caller, issue, wait, queue, answeredAt, talkSeconds, autoAnswer,
  //  answerAt (the breath's end, this browser's clock), cleared (no caller data left)}
  call: null,
  wrapupUntil: null,
  wrapCallId: null,
  queues: {},
  pending: null, // {state, reason, mine}: asked during a call, applied when it ends
  asking: null, // the pending state this screen asked for (else a supervisor did)
  answered: new Set(),
  live: false, // the socket is up: commands can be sent
};

let socket = null;

// --- drawing ----------------------------------------------------------------------

function setPop(text, phase) {
  ui.pop.dataset.phase = phase || "";
  setText(ui.pop, text);
}

function status(text, isError = false) {
  ui.status.classList.toggle("error", isError);
  setText(ui.status, text);
}

function render() {
  const a = S.agent;
  const busy = BUSY.has(a.state);
  ui.badge.dataset.state = a.state;
  let label = a.state === "available" ? t("Ready") : stateLabel(a.state);
  if (a.state === "paused" && a.pause_reason) label += `: ${reasonLabel(a.pause_reason)}`;
  setText(ui.badge, label);
  setText(ui.stateHint, HINTS[a.state] ? t(HINTS[a.state]) : "");
  if (S.pending && busy && !S.pending.mine) {
    // Asked by a supervisor (agent.pending): said plainly, it is not the volunteer's doing.
    setText(
      ui.pendingNote,
      S.pending.state === "logged_out"
        ? t("Sign-out requested by your supervisor: after this call.")
        : t("Pause requested by your supervisor: after this call."),
    );
  } else if (S.pending && busy) {
    setText(
      ui.pendingNote,
      S.pending.state === "logged_out"
        ? t("You will stop taking calls after this call. Press Ready to cancel.")
        : t("You will be paused after this call ({reason}). Press Ready to cancel.", {
            reason: reasonLabel(S.pending.reason),
          }),
    );
  } else {
    setText(ui.pendingNote, "");
  }
  const off = !S.live;
  ui.ready.disabled =
    off || !(a.state === "logged_out" || a.state === "paused" || (busy && S.pending));
  ui.pause.disabled = off || a.state === "logged_out";
  ui.logout.disabled = off || a.state === "logged_out";

  const call = S.call;
  ui.noCall.hidden = Boolean(call);
  ui.callBody.hidden = !call;
  if (call) {
    setText(ui.caller, call.cleared ? "–" : callerText(call.caller, call.issue));
    setText(ui.wait, fmtSeconds(call.wait));
    setText(ui.queue, call.queue || "–");
  }
  ui.answer.hidden = !(call && call.state === "offered" && !call.autoAnswer);
  // The breath before auto-answer: the card flashes, a countdown, Answer now.
  const breathing = inBreath();
  ui.breath.hidden = !breathing;
  ui.callCard.dataset.breath = breathing ? "on" : "";
  ui.answerNow.disabled = off;
  // A callback: no caller on the line yet; the volunteer's click makes the line dial.
  const isCallback = Boolean(call && call.kind === "callback");
  ui.callKind.hidden = !isCallback;
  ui.callKindTerm.hidden = !isCallback;
  ui.callKindNote.hidden = !isCallback;
  setText(ui.answer, isCallback ? t("Call back") : t("Answer"));
  ui.hangup.disabled = off || !(call && call.state === "connected" && a.state === "on_call");
  ui.answer.disabled = off;
  ui.endWrapup.disabled = off;
  ui.extend.disabled = off;

  const inWrapUp = a.state === "wrap_up";
  if (inWrapUp && S.wrapCallId !== (call ? call.id : null)) {
    S.wrapCallId = call ? call.id : null;
    for (const radio of document.querySelectorAll('input[name="disposition"]')) radio.checked = false;
    setText(ui.wrapupError, "");
  }
  ui.wrapup.hidden = !inWrapUp;
  if (S.me && a.display_name) setText(ui.who, a.display_name);
  tick();
}

function tick() {
  const a = S.agent;
  setText(
    ui.stateTime,
    a.state_since ? t("for {duration}", { duration: fmtDuration(clock.since(a.state_since)) }) : "",
  );
  const call = S.call;
  if (call) {
    let talk = 0;
    if (call.talkSeconds !== undefined && call.talkSeconds !== null) talk = call.talkSeconds;
    else if (call.answeredAt) talk = clock.since(call.answeredAt);
    setText(ui.timer, fmtDuration(talk));
  }
  if (inBreath()) {
    const left = Math.max(0, Math.ceil((call.answerAt - Date.now()) / 1000));
    setText(ui.breathCountdown, t("Answering automatically in {seconds} s", { seconds: left }));
  }
  if (a.state === "wrap_up") {
    if (S.wrapupUntil) {
      const left = clock.until(S.wrapupUntil);
      setText(ui.countdown, left > 0 ? fmtDuration(Math.ceil(left)) : t("0:00 — ending…"));
    } else {
      setText(ui.countdown, "–");
    }
  }
}

// --- messages ---------------------------------------------------------------------

function callFromView(view) {
  let wait = view.wait_seconds;
  if ((wait === null || wait === undefined) && view.queued_at && view.offered_at) {
    wait = (Date.parse(view.offered_at) - Date.parse(view.queued_at)) / 1000;
  }
  return {
    id: view.id,
    state: view.state,
    caller: view.caller_number,
    issue: view.caller_number_issue,
    wait,
    queue: S.queues[view.queue_id] || "",
    answeredAt: view.answered_at,
    autoAnswer: false,
    kind: view.kind || "inbound",
  };
}

function applySnapshot(data) {
  S.queues = data.queues || {};
  S.agent = { ...data.agent };
  S.pending = data.agent.pending_state
    ? { state: data.agent.pending_state, reason: null, mine: S.asking === data.agent.pending_state }
    : null;
  S.call = data.call ? callFromView(data.call) : null;
  S.wrapupUntil = data.wrapup_until;
  if (S.call) {
    const who = callerText(S.call.caller, S.call.issue);
    if (S.call.state === "offered" && S.call.kind === "callback") {
      setPop(t("Callback to {who}", { who }), "offered");
    } else if (S.call.state === "dialing") setPop(t("Callback: dialling {who}…", { who }), "offered");
    else if (S.call.state === "offered") setPop(t("Incoming call from {who}", { who }), "offered");
    else if (S.call.state === "connected") setPop(t("On call with {who}", { who }), "connected");
    else setPop(t("Call with {who} ended", { who }), "ended");
  } else {
    setPop("", "");
  }
}

function sameCall(data) {
  return S.call && S.call.id === data.call_id;
}

function onEvent(msg) {
  const d = msg.data || {};
  switch (msg.type) {
    case "snapshot":
      applySnapshot(d);
      break;
    case "resync":
      status(t("Catching up…"));
      break;
    case "agent.state":
      S.agent.state = d.state;
      S.agent.pause_reason = d.reason;
      S.agent.state_since = msg.at;
      if (!BUSY.has(d.state)) {
        S.pending = null;
        S.wrapupUntil = null;
        if (S.call) setPop("", "");
        S.call = null;
      }
      break;
    case "call.offered": {
      const seconds = Number.isInteger(d.auto_answer_seconds) ? d.auto_answer_seconds : 0;
      S.call = {
        id: d.call_id,
        state: "offered",
        caller: d.caller,
        issue: d.caller_issue,
        wait: d.wait_seconds,
        queue: d.queue,
        answeredAt: null,
        autoAnswer: Boolean(d.auto_answer),
        answerAt: Date.now() + Math.min(Math.max(seconds, 0), 5) * 1000,
        kind: d.kind || "inbound",
      };
      ring();
      const who = callerText(d.caller, d.caller_issue);
      if (S.call.kind === "callback") {
        const ago = fmtSeconds(d.wait_seconds);
        setPop(t("Callback to {who} — asked {ago} ago", { who, ago }), "offered");
      } else {
        const waited = fmtSeconds(d.wait_seconds);
        setPop(t("Incoming call from {who} — waited {waited}", { who, waited }), "offered");
      }
      if (d.auto_answer) autoAnswer(d.call_id, S.call.answerAt - Date.now());
      break;
    }
    case "call.connected":
      if (!sameCall(d)) {
        S.call = {
          id: d.call_id, state: "connected", caller: d.caller, issue: d.caller_issue,
          wait: d.wait_seconds, queue: S.queues[d.queue_id] || "", autoAnswer: true,
        };
      }
      S.call.state = "connected";
      S.call.answeredAt = msg.at;
      if (d.wait_seconds !== undefined) S.call.wait = d.wait_seconds;
      setPop(t("On call with {who}", { who: callerText(S.call.caller, S.call.issue) }), "connected");
      break;
    case "call.wrap_up":
      if (sameCall(d)) {
        S.call.state = "wrap_up";
        S.call.talkSeconds = d.talk_seconds;
        const who = callerText(S.call.caller, S.call.issue);
        setPop(
          d.by === "caller"
            ? t("{who} hung up — wrap-up", { who })
            : t("Call with {who} ended — wrap-up", { who }),
          "ended",
        );
      }
      S.wrapupUntil = d.wrapup_until || S.wrapupUntil;
      break;
    case "call.transferred":
      if (sameCall(d)) {
        S.call.state = "transferred";
        S.call.talkSeconds = S.call.answeredAt ? clock.since(S.call.answeredAt) : 0;
        // The caller is someone else's now: their details leave this screen.
        S.call.caller = null;
        S.call.issue = null;
        S.call.cleared = true;
        setPop(
          d.to_queue
            ? t("Call transferred to {queue} — wrap-up", { queue: d.to_queue })
            : t("Call transferred — wrap-up"),
          "ended",
        );
      }
      break;
    case "agent.wrap_up_extended":
      S.wrapupUntil = d.wrapup_until;
      break;
    case "call.completed":
      if (sameCall(d)) setPop("", "");
      break;
    case "call.abandoned":
      if (sameCall(d)) {
        S.call = null;
        setPop(t("The caller hung up before the call was answered."), "ended");
      }
      break;
    case "callback.dialing":
      if (sameCall(d)) {
        S.call.state = "dialing";
        setPop(t("Callback: dialling {who}…", { who: callerText(S.call.caller, S.call.issue) }), "offered");
      }
      break;
    case "callback.unanswered":
      if (sameCall(d)) {
        S.call = null;
        // Said without the number: this line stays on an idle screen.
        setPop(
          d.next === "retry"
            ? t("The callback was not answered — it will be tried again later.")
            : t("The callback was not answered — it is reported."),
          "ended",
        );
      }
      break;
    case "call.requeued":
      if (sameCall(d)) {
        S.call = null;
        setPop(t("The call went back to the queue."), "ended");
      }
      break;
    case "supervisor.broadcast":
      showBroadcast(d.text, d.from, msg.at);
      break;
    case "agent.pending":
      // A pause or sign-out asked during a call, by this screen or a supervisor.
      S.pending = d.pending_state
        ? { state: d.pending_state, reason: d.reason, mine: S.asking === d.pending_state }
        : null;
      break;
    case "error":
      status(d.message || t("Refused."), true);
      break;
    default:
      break;
  }
  render();
  shareWithPanels(msg);
}

/** Tell the panels (caller details, pledge form, script) what happened. */
function shareWithPanels(msg) {
  if (!S.call && screen.practice) {
    // A practice call (practice.js) holds the panels while there is no real call.
    screen.agent = { ...S.agent };
    publish("message", msg);
    return;
  }
  const before = screen.call;
  screen.call = S.call ? { ...S.call } : null;
  screen.agent = { ...S.agent };
  const changed =
    (before ? `${before.id}:${before.state}` : "") !==
    (screen.call ? `${screen.call.id}:${screen.call.state}` : "");
  publish("message", msg);
  if (changed) publish("call", { call: screen.call });
}

/** The offer's breath is on: auto-answer is coming and nobody answered yet. */
function inBreath() {
  const call = S.call;
  return Boolean(
    call && call.state === "offered" && call.autoAnswer && call.answerAt && !S.answered.has(call.id),
  );
}

/** The offer's tone (a file of the app); a browser that refuses to play stays silent. */
function ring() {
  const tone = ui.tone;
  if (!tone || typeof tone.play !== "function") return;
  tone.dataset.played = "";
  try {
    tone.currentTime = 0;
    const playing = tone.play();
    if (playing && playing.then) {
      playing.then(
        () => (tone.dataset.played = "yes"),
        () => (tone.dataset.played = "blocked"),
      );
    }
  } catch {
    tone.dataset.played = "blocked";
  }
}

/**
 * Auto-answer: the screen takes the offer itself once the queue's breath is over
 * (``delay`` ms; at least a tick, so that a replay after a reconnection, an offer then
 * a requeue or hang-up, does not answer a stale offer); ``answer`` acts on whatever
 * call the volunteer holds now. Answer now (or Answer) during the breath wins.
 */
function autoAnswer(callId, delay = 0) {
  setTimeout(() => {
    const call = S.call;
    if (!call || call.id !== callId || call.state !== "offered" || S.answered.has(callId)) return;
    S.answered.add(callId);
    socket.command("answer").catch((err) => {
      // Another screen of the same volunteer may have answered: give it a moment.
      setTimeout(() => {
        if (S.call && S.call.id === callId && S.call.state === "offered") {
          S.call.autoAnswer = false; // the Answer button shows
          status(t("Could not answer automatically: {why}", { why: explain(err) }), true);
          render();
        }
      }, 1000);
    });
    render();
  }, Math.max(0, delay));
}

async function answerNow() {
  const call = S.call;
  if (!call || call.state !== "offered" || S.answered.has(call.id)) return;
  S.answered.add(call.id);
  status("");
  render();
  try {
    await socket.command("answer");
  } catch (err) {
    status(explain(err), true);
    if (S.call && S.call.id === call.id && S.call.state === "offered") {
      S.answered.delete(call.id);
      S.call.autoAnswer = false; // the Answer button shows
    }
  }
  render();
}

function keptBroadcasts() {
  try {
    const kept = JSON.parse(sessionStorage.getItem(BROADCASTS_KEY) || "[]");
    return Array.isArray(kept) ? kept : [];
  } catch {
    return [];
  }
}

function keepBroadcasts(list) {
  try {
    sessionStorage.setItem(BROADCASTS_KEY, JSON.stringify(list));
  } catch {
    /* storage full or off: the banner still shows until dismissed or reloaded */
  }
}

/**
 * A supervisor's message: a banner that stays until the volunteer dismisses it, also
 * across calls, reconnections and a reload of the page (kept in this tab's storage).
 */
function showBroadcast(text, from, at, { keep = true } = {}) {
  const key = `${at}|${from || ""}|${text}`;
  if ([...ui.broadcasts.children].some((node) => node.dataset.key === key)) return;
  if (keep) {
    const kept = keptBroadcasts().filter((b) => b.key !== key);
    kept.push({ key, text, from, at });
    keepBroadcasts(kept);
  }
  const banner = document.createElement("div");
  banner.dataset.key = key;
  banner.className = "banner message";
  banner.setAttribute("role", "alert");
  const p = document.createElement("p");
  const sender = from || t("a supervisor");
  p.textContent = t("Message from {sender}: {text}", { sender, text });
  const time = document.createElement("span");
  time.className = "hint";
  time.textContent = new Date(at).toLocaleTimeString([], { hour12: false });
  const close = document.createElement("button");
  close.type = "button";
  close.className = "secondary small";
  close.textContent = t("Dismiss");
  close.setAttribute("aria-label", t("Dismiss the message from {sender}", { sender }));
  close.addEventListener("click", () => {
    banner.remove();
    keepBroadcasts(keptBroadcasts().filter((b) => b.key !== key));
  });
  banner.append(p, time, close);
  ui.broadcasts.prepend(banner);
}

// --- commands ---------------------------------------------------------------------

function explain(err) {
  if (err && err.code === "illegal_agent_transition") {
    const state = stateLabel(S.agent.state).toLowerCase();
    return t("Not possible right now (you are {state}).", { state });
  }
  if (err && err.code === "no_current_call") return t("There is no call to act on.");
  return (err && err.message) || t("Refused.");
}

async function run(command, args, done) {
  status("");
  try {
    await socket.command(command, args);
    if (done) done();
  } catch (err) {
    status(explain(err), true);
  }
  render();
}

async function ready() {
  const busy = BUSY.has(S.agent.state);
  if (!busy && screen.beforeReady) {
    // The browser softphone (softphone.js): a microphone heard and a line registered first.
    status(t("Checking the headset…"));
    const check = await screen.beforeReady();
    if (!check.ok) {
      status(check.why, true);
      return;
    }
  }
  S.asking = null;
  run("ready", {}, () => {
    S.pending = null;
    status(busy ? t("You will stay ready after this call.") : "");
  });
}

function pause() {
  const reason = ui.pauseReason.value;
  const busy = BUSY.has(S.agent.state);
  S.asking = busy ? "paused" : null;
  run("pause", { reason }, () => {
    if (busy) S.pending = { state: "paused", reason, mine: true };
  });
}

function logout() {
  const busy = BUSY.has(S.agent.state);
  S.asking = busy ? "logged_out" : null;
  run("logout", {}, () => {
    if (busy) S.pending = { state: "logged_out", reason: null, mine: true };
  });
}

function endWrapUp() {
  const chosen = document.querySelector('input[name="disposition"]:checked');
  if (!chosen) {
    setText(ui.wrapupError, t("Choose how the call ended first."));
    const first = document.querySelector('input[name="disposition"]');
    if (first) first.focus();
    return;
  }
  setText(ui.wrapupError, "");
  run("end_wrap_up", { disposition: chosen.value });
}

ui.ready.addEventListener("click", ready);
ui.pause.addEventListener("click", pause);
ui.logout.addEventListener("click", logout);
ui.answer.addEventListener("click", answerNow);
ui.answerNow.addEventListener("click", answerNow);
ui.hangup.addEventListener("click", () => run("hangup", {}));
ui.endWrapup.addEventListener("click", endWrapUp);
ui.extend.addEventListener("click", () => run("extend_wrap_up", { seconds: 30 }));
for (const radio of document.querySelectorAll('input[name="disposition"]')) {
  radio.addEventListener("change", () => setText(ui.wrapupError, ""));
}

// --- keyboard shortcuts (can be turned off: WCAG 2.1.4) -----------------------------

function shortcutsOn() {
  return localStorage.getItem(SHORTCUTS_KEY) !== "off";
}
ui.shortcuts.checked = shortcutsOn();
ui.shortcuts.addEventListener("change", () => {
  localStorage.setItem(SHORTCUTS_KEY, ui.shortcuts.checked ? "on" : "off");
});

const SHORTCUTS = { r: ui.ready, p: ui.pause, h: ui.hangup, e: ui.endWrapup };

document.addEventListener("keydown", (event) => {
  if (!ui.shortcuts.checked || event.ctrlKey || event.metaKey || event.altKey) return;
  const target = event.target;
  if (target instanceof HTMLElement) {
    const typing =
      target.isContentEditable ||
      target instanceof HTMLTextAreaElement ||
      target instanceof HTMLSelectElement ||
      (target instanceof HTMLInputElement && !["checkbox", "radio", "button"].includes(target.type));
    if (typing) return;
  }
  const button = SHORTCUTS[event.key.toLowerCase()];
  if (!button || button.disabled || button.closest("[hidden]")) return;
  event.preventDefault();
  button.click();
});

// --- start --------------------------------------------------------------------------

async function signOutClicked() {
  if (BUSY.has(S.agent.state)) {
    status(t("Finish the call and the wrap-up before signing out."), true);
    return;
  }
  if (S.agent.state !== "logged_out" && socket && socket.isOpen) {
    try {
      await socket.command("logout");
    } catch {
      /* signing out anyway: the server pauses a screen that is gone */
    }
  }
  if (socket) socket.stop();
  keepBroadcasts([]);
  signOut(S.me.csrf_token);
}

async function main() {
  const me = await signedInUser((text) => status(text, true));
  if (!me) return;
  S.me = me;
  setText(ui.who, me.username);
  $("signout-btn").addEventListener("click", signOutClicked);
  if (me.role !== "agent" || me.agent_id === null) {
    showNotAllowed($("main"), { me, wanted: N_("volunteers") });
    return;
  }
  for (const kept of keptBroadcasts()) showBroadcast(kept.text, kept.from, kept.at, { keep: false });
  const banner = connectionBanner(ui.banners, ui.conn);
  socket = new ScreenSocket("agent", {
    csrf: me.csrf_token,
    onMessage: onEvent,
    onStatus: (state, detail) => {
      banner(state, detail);
      S.live = state === "open" || state === "reconnected";
      render();
    },
    onFatal: (kind) => {
      if (kind === "forbidden") showNotAllowed($("main"), { me, wanted: N_("volunteers") });
      else goToLogin();
    },
  });
  screen.me = me;
  screen.command = (name, args = {}) => socket.command(name, args);
  publish("ready", { me });
  socket.start();
  render();
  setInterval(tick, 500);
}

main();
