// The volunteer's browser softphone (docs/telephony.md, Softphone): a headset and
// this page are all a volunteer needs. Shown only when the hotline offers one
// (POST /softphone/credentials answers; 404 softphone_off or 409 at_desk_phone keep
// the desk-phone mode, nothing of this panel shows).
//
// - Before Ready: the microphone is checked, with a level meter (Web Audio
//   AnalyserNode); Ready waits for a microphone that is heard and a registration.
// - Registers over the PBX's websocket with the vendored JsSIP (no CDN), as the
//   volunteer's seat, with credentials of this login session (never the PIN), asked
//   again before they run out.
// - An incoming SIP call is the offered call on screen: it is answered when the screen
//   answers it (auto-answer after the queue's breath, or the Answer button: agent.js);
//   one that matches no offer gets its own Answer button. Mute, hold, hang-up (through
//   the screen's hang-up command too); when the screen's call ends, so does the line.
// - A network cut: JsSIP reconnects by itself; back online, the page registers anew.

import { api, setText } from "/static/common.js";
import { N_, t } from "/static/i18n.js";
import { bus, screen } from "/static/agent-bus.js";

const $ = (id) => document.getElementById(id);
// The SIP stack (app/web/static/vendor/jssip.min.js, 250 kB): loaded only where a
// softphone is offered, so the desk-phone mode downloads none of it.
let JsSIP = null;
const ui = {
  panel: $("softphone"),
  status: $("softphone-status"),
  meter: $("mic-level"),
  micCheck: $("mic-check-btn"),
  micStatus: $("mic-status"),
  answer: $("sp-answer-btn"),
  mute: $("sp-mute-btn"),
  hold: $("sp-hold-btn"),
  hangup: $("sp-hangup-btn"),
  remote: $("sp-remote"),
};

// A microphone is "heard" once its level passes this (RMS of the samples, 0..1).
const HEARD_LEVEL = 0.01;
const MIC_CHECK_MS = 6000;
// Credentials are asked again when this share of their life has gone.
const RENEW_AT = 0.8;
const REGISTER_EXPIRES = 300; // seconds: a registration lost with the network ends soon
const RETRY_REGISTER_MS = 30_000;

const S = {
  me: null,
  creds: null,
  ua: null,
  registered: false,
  session: null, // the SIP call on the line (one at a time)
  answered: false, // the line's call was answered here
  mic: { stream: null, context: null, analyser: null, samples: null, heard: false, refused: false },
  renewTimer: null,
  retryTimer: null,
};

// --- status lines -------------------------------------------------------------------

function phoneStatus(id, phase = "", params = {}) {
  ui.status.dataset.phase = phase;
  setText(ui.status, t(id, params));
}

function micStatus(id, phase = "") {
  ui.micStatus.dataset.phase = phase;
  setText(ui.micStatus, id ? t(id) : "");
}

function renderCall() {
  const session = S.session;
  const live = Boolean(session && S.answered && !session.isEnded());
  ui.mute.disabled = !live;
  ui.hold.disabled = !live;
  ui.hangup.disabled = !(session && !session.isEnded());
  const muted = live && session.isMuted().audio;
  const held = live && session.isOnHold().local;
  ui.mute.setAttribute("aria-pressed", String(muted));
  ui.hold.setAttribute("aria-pressed", String(held));
  setText(ui.mute, muted ? t("Unmute") : t("Mute"));
  setText(ui.hold, held ? t("Resume") : t("Hold"));
  if (!live) return;
  if (held) phoneStatus(N_("Caller on hold"), "ok");
  else if (muted) phoneStatus(N_("On call — microphone muted"), "ok");
  else phoneStatus(N_("On call on the headset"), "ok");
}

// --- the microphone ------------------------------------------------------------------

function sampleLevel() {
  const mic = S.mic;
  if (!mic.analyser) return;
  mic.analyser.getFloatTimeDomainData(mic.samples);
  let sum = 0;
  for (const v of mic.samples) sum += v * v;
  const rms = Math.sqrt(sum / mic.samples.length);
  ui.meter.value = Math.min(1, rms * 4);
  if (rms >= HEARD_LEVEL && !mic.heard) {
    mic.heard = true;
    micStatus(N_("Microphone OK"), "ok");
  }
}

/** Open the microphone (once) and its level meter; true once it has been heard. */
async function checkMicrophone() {
  const mic = S.mic;
  if (mic.heard) return true;
  micStatus(N_("Checking the microphone… speak into the headset."));
  try {
    if (!mic.stream) {
      mic.stream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
        video: false,
      });
    }
  } catch (err) {
    mic.refused = true;
    micStatus(
      err && err.name === "NotAllowedError"
        ? N_("Microphone refused: allow it in the browser to take calls.")
        : N_("No microphone found: plug in the headset."),
      "bad",
    );
    return false;
  }
  mic.refused = false;
  if (!mic.context) {
    mic.context = new AudioContext();
    const source = mic.context.createMediaStreamSource(mic.stream);
    mic.analyser = mic.context.createAnalyser();
    mic.analyser.fftSize = 1024;
    mic.samples = new Float32Array(mic.analyser.fftSize);
    source.connect(mic.analyser);
    setInterval(sampleLevel, 100);
  }
  // Without a click first, a browser may hold the audio context suspended: the meter
  // starts with the volunteer's next click (this button, or Ready).
  if (mic.context.state === "suspended") mic.context.resume().catch(() => {});
  const deadline = Date.now() + MIC_CHECK_MS;
  while (!mic.heard && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (!mic.heard) micStatus(N_("No sound from the microphone: check the headset."), "bad");
  return mic.heard;
}

// --- credentials and registration -------------------------------------------------------

async function fetchCredentials() {
  const r = await api("/softphone/credentials", { method: "POST", csrf: S.me.csrf_token });
  return r;
}

function scheduleRenewal(creds) {
  clearTimeout(S.renewTimer);
  const left = Date.parse(creds.expires_at) - Date.now();
  S.renewTimer = setTimeout(renew, Math.max(10_000, left * RENEW_AT));
}

async function renew() {
  const r = await fetchCredentials().catch(() => null);
  if (!r || !r.ok) {
    if (r && r.status === 401) {
      stopPhone();
      phoneStatus(N_("Signed out: the softphone is off."), "bad");
      return;
    }
    S.renewTimer = setTimeout(renew, 30_000); // the server is away: again shortly
    return;
  }
  S.creds = r.data;
  scheduleRenewal(S.creds);
  if (S.ua) {
    S.ua.set("password", S.creds.password);
    if (S.ua.isConnected()) S.ua.register();
  }
}

function startPhone() {
  const creds = S.creds;
  const ua = new JsSIP.UA({
    sockets: [new JsSIP.WebSocketInterface(creds.ws_url)],
    uri: creds.sip_uri,
    authorization_user: creds.username,
    password: creds.password,
    display_name: S.me.username,
    register: true,
    register_expires: REGISTER_EXPIRES,
    session_timers: false,
    user_agent: "Pledgeline softphone",
    connection_recovery_min_interval: 2,
    connection_recovery_max_interval: 30,
  });
  S.ua = ua;
  ua.on("connecting", () => {
    if (!S.registered) phoneStatus(N_("Connecting to the phone system…"));
  });
  ua.on("disconnected", () => {
    S.registered = false;
    phoneStatus(N_("Reconnecting…"), "bad");
  });
  ua.on("registered", () => {
    S.registered = true;
    if (!S.session) phoneStatus(N_("Connected to the phone system"), "ok");
  });
  ua.on("unregistered", () => {
    S.registered = false;
    if (S.ua === ua) phoneStatus(N_("Reconnecting…"), "bad");
  });
  ua.on("registrationFailed", (e) => {
    S.registered = false;
    const cause = e && e.cause;
    if (cause === JsSIP.C.causes.AUTHENTICATION_ERROR) {
      phoneStatus(N_("The phone system refused the softphone's credentials."), "bad");
      retryRegistration(true); // with new ones
    } else if (cause === JsSIP.C.causes.REJECTED || cause === JsSIP.C.causes.NOT_FOUND) {
      phoneStatus(N_("The phone system refused the softphone's registration."), "bad");
      retryRegistration(false);
    } else {
      phoneStatus(N_("Reconnecting…"), "bad");
    }
  });
  ua.on("newRTCSession", (e) => {
    if (e.originator === "remote") incoming(e.session);
  });
  ua.start();
}

/** A refused registration is tried again, not at once (a PBX that keeps refusing is
 * asked twice a minute, not in a loop); ``fresh``: with new credentials first. */
function retryRegistration(fresh) {
  if (S.retryTimer) return;
  S.retryTimer = setTimeout(async () => {
    S.retryTimer = null;
    if (fresh) await renew();
    else if (S.ua && S.ua.isConnected()) S.ua.register();
  }, RETRY_REGISTER_MS);
}

function stopPhone() {
  clearTimeout(S.renewTimer);
  clearTimeout(S.retryTimer);
  S.retryTimer = null;
  if (S.ua) {
    const ua = S.ua;
    S.ua = null;
    S.registered = false;
    try {
      ua.stop(); // unregisters and closes the socket
    } catch {
      /* already stopped */
    }
  }
}

/** Back online after a network cut: a new socket and registration now, rather than at
 * JsSIP's next retry. */
function restartPhone() {
  if (!S.creds || S.session) return; // a call on the line recovers by itself or ends
  phoneStatus(N_("Reconnecting…"), "bad");
  stopPhone();
  renew().finally(() => {
    if (!S.ua) startPhone();
  });
}

// --- calls ----------------------------------------------------------------------------

/** The caller's voice to the headset. JsSIP makes an incoming call's peer connection
 * when it is answered ("peerconnection"); its tracks then arrive. */
function attachAudio(session) {
  const play = (stream) => {
    if (stream && ui.remote.srcObject !== stream) {
      ui.remote.srcObject = stream;
      ui.remote.play().catch(() => {});
    }
  };
  const listen = (pc) =>
    pc.addEventListener("track", (event) => play(event.streams[0] || new MediaStream([event.track])));
  if (session.connection) listen(session.connection);
  else session.on("peerconnection", (e) => listen(e.peerconnection));
}

function incoming(session) {
  if (S.session && !S.session.isEnded()) {
    session.terminate({ status_code: 486, reason_phrase: "Busy Here" });
    return;
  }
  S.session = session;
  S.answered = false;
  attachAudio(session);
  const done = () => {
    if (S.session !== session) return;
    S.session = null;
    S.answered = false;
    ui.answer.hidden = true;
    ui.remote.srcObject = null;
    phoneStatus(
      S.registered ? N_("Connected to the phone system") : N_("Reconnecting…"),
      S.registered ? "ok" : "bad",
    );
    renderCall();
  };
  session.on("ended", done);
  session.on("failed", done);
  session.on("confirmed", renderCall);
  session.on("hold", renderCall);
  session.on("unhold", renderCall);
  session.on("muted", renderCall);
  session.on("unmuted", renderCall);
  const call = screen.call;
  if (call && call.state === "connected") {
    answerLine(); // the screen answered before the line rang
  } else if (call && call.state === "offered") {
    // The offered call: the screen answers it (after the breath, or its Answer button).
    phoneStatus(N_("Incoming call on the headset"), "ok");
  } else {
    // No offer on screen to match it: the volunteer decides.
    phoneStatus(N_("Incoming call on the headset"), "ok");
    ui.answer.hidden = false;
  }
  renderCall();
}

function answerLine() {
  const session = S.session;
  if (!session || S.answered || session.isEnded()) return;
  S.answered = true;
  ui.answer.hidden = true;
  const options = { mediaConstraints: { audio: true, video: false } };
  if (S.mic.stream) options.mediaStream = S.mic.stream;
  options.pcConfig = { iceServers: (S.creds && S.creds.ice_servers) || [] };
  try {
    session.answer(options);
  } catch {
    S.answered = false;
  }
  renderCall();
}

function hangUpLine() {
  const session = S.session;
  if (session && !session.isEnded()) {
    try {
      session.terminate();
    } catch {
      /* ended meanwhile */
    }
  }
}

// The call on screen moved: answered there → answer the line; over → hang the line up.
bus.addEventListener("call", (event) => {
  const call = event.detail.call;
  if (!S.session) return;
  if (call && call.state === "connected") answerLine();
  else if (!call || !["offered", "connected", "consulting"].includes(call.state)) hangUpLine();
});

ui.answer.addEventListener("click", async () => {
  answerLine();
  // An offer on screen is answered there too (its line is this one).
  const call = screen.call;
  if (call && call.state === "offered") await screen.command("answer").catch(() => {});
});
ui.mute.addEventListener("click", () => {
  const session = S.session;
  if (!session) return;
  if (session.isMuted().audio) session.unmute({ audio: true });
  else session.mute({ audio: true });
  renderCall();
});
ui.hold.addEventListener("click", () => {
  const session = S.session;
  if (!session) return;
  if (session.isOnHold().local) session.unhold();
  else session.hold();
  renderCall();
});
ui.hangup.addEventListener("click", async () => {
  // The screen's hang-up first (wrap-up, and the platform ends the caller's leg);
  // the line is hung up here either way.
  const call = screen.call;
  if (call && call.state === "connected") await screen.command("hangup").catch(() => {});
  hangUpLine();
});
ui.micCheck.addEventListener("click", () => {
  S.mic.heard = false;
  checkMicrophone();
});

// --- start ------------------------------------------------------------------------------

/** agent.js asks this before Ready: the microphone heard, and the line registered. */
async function beforeReady() {
  if (!(await checkMicrophone())) return { ok: false, why: t("Check the microphone before pressing Ready.") };
  if (!S.registered) {
    return { ok: false, why: t("Wait for “Connected to the phone system” before pressing Ready.") };
  }
  return { ok: true };
}

let started = false;

async function start(me) {
  if (started) return;
  started = true;
  S.me = me;
  if (me.role !== "agent" || me.agent_id === null) return;
  const r = await fetchCredentials().catch(() => null);
  if (!r || !r.ok) return; // no softphone here (softphone_off, at_desk_phone): desk phones
  S.creds = r.data;
  JsSIP = (await import("/static/vendor/jssip.min.js")).default;
  ui.panel.hidden = false;
  screen.beforeReady = beforeReady;
  scheduleRenewal(S.creds);
  phoneStatus(N_("Connecting to the phone system…"));
  startPhone();
  checkMicrophone();
  renderCall();
  window.addEventListener("offline", () => phoneStatus(N_("Reconnecting…"), "bad"));
  window.addEventListener("online", restartPhone);
  const signOut = $("signout-btn");
  if (signOut) signOut.addEventListener("click", stopPhone);
  window.addEventListener("pagehide", stopPhone);
}

bus.addEventListener("ready", (event) => {
  start(event.detail.me);
});
if (screen.me) start(screen.me); // agent.js was quicker than this module
