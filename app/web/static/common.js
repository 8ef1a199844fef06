// Shared by the pages: HTTP helpers, who is signed in, formatting, and the screen
// socket (ws-token handshake, heartbeat, command acks, reconnection with resume).
// Texts go through t() (i18n.js); the catalogue is loaded by whoAmI, where every
// signed-in panel starts, and N_() marks an id written before it is loaded.

import { loadCatalogue, N_, t } from "/static/i18n.js";

export const STATE_LABELS = {
  logged_out: N_("Logged out"),
  available: N_("Ready"),
  reserved: N_("Incoming call"),
  on_call: N_("On call"),
  consulting: N_("Consulting"),
  wrap_up: N_("Wrap-up"),
  paused: N_("Paused"),
};

export const REASON_LABELS = {
  break: N_("Break"),
  training: N_("Training"),
  technical: N_("Technical problem"),
  other: N_("Other"),
  not_ready: N_("Not ready yet"),
  missed: N_("Missed a call"),
  disconnected: N_("Screen disconnected"),
  supervisor: N_("Paused by supervisor"),
};

export function reasonLabel(reason) {
  if (!reason) return "";
  return REASON_LABELS[reason] ? t(REASON_LABELS[reason]) : reason.replaceAll("_", " ");
}

export function stateLabel(state) {
  return STATE_LABELS[state] ? t(STATE_LABELS[state]) : String(state || "").replaceAll("_", " ");
}

/** An element with properties (``text``, ``className``, attributes; true: present)
 * and children. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "text") node.textContent = v;
    else if (k === "className") node.className = v;
    else if (v !== false && v !== null && v !== undefined) node.setAttribute(k, v === true ? "" : v);
  }
  node.append(...children);
  return node;
}

/** fetch + JSON; never throws on HTTP errors (network errors do throw). */
export async function api(path, { method = "GET", body, csrf } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (csrf && method !== "GET") headers["X-CSRF-Token"] = csrf;
  const response = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    cache: "no-store",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  const text = await response.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { message: text };
    }
  }
  return { ok: response.ok, status: response.status, data };
}

/** The signed-in user (with csrf_token), or null without a session. */
export async function whoAmI() {
  // Every panel starts here: the page's catalogue (<html lang>) first, fetched once
  // for all of them, so all they write is in that language (English without it).
  await loadCatalogue().catch(() => {});
  const r = await api("/auth/me");
  if (r.status === 401) return null;
  if (!r.ok) throw new Error(`/auth/me answered ${r.status}`);
  return r.data;
}

/**
 * The signed-in user, as every page starts: null when the page has gone to the
 * sign-in page, or when the server cannot be reached (said through ``report``).
 */
export async function signedInUser(report) {
  let me;
  try {
    me = await whoAmI();
  } catch {
    report(t("The server cannot be reached. Reload the page to try again."));
    return null;
  }
  if (!me) {
    goToLogin();
    return null;
  }
  return me;
}

export function goToLogin() {
  const next = location.pathname + location.search;
  location.assign(`/login?next=${encodeURIComponent(next)}`);
}

export function pageForRole(role) {
  if (role === "agent") return "/agent";
  if (role === "supervisor" || role === "admin") return "/supervisor";
  if (role === "organiser") return "/organiser";
  return "/";
}

export async function signOut(csrf) {
  try {
    await api("/auth/logout", { method: "POST", csrf });
  } finally {
    location.assign("/login");
  }
}

/** 75 -> "1:15", 3725 -> "1:02:05". */
export function fmtDuration(seconds) {
  const s = Math.max(0, Math.floor(seconds || 0));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${r}` : `${m}:${r}`;
}

export function fmtSeconds(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  return seconds < 60 ? `${Math.round(seconds)} s` : fmtDuration(seconds);
}

export function fmtClock(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : d.toLocaleTimeString([], { hour12: false });
}

export function callerText(caller, issue) {
  if (caller) return caller;
  if (issue === "invalid") return t("unrecognised number");
  return t("withheld number");
}

/** Server time, estimated from the ``at`` of live messages (not replayed events). */
export const clock = {
  offset: 0,
  observe(at) {
    const t = Date.parse(at);
    if (!Number.isNaN(t)) this.offset = t - Date.now();
  },
  now() {
    return Date.now() + this.offset;
  },
  since(iso) {
    const t = Date.parse(iso);
    return Number.isNaN(t) ? 0 : (this.now() - t) / 1000;
  },
  until(iso) {
    const t = Date.parse(iso);
    return Number.isNaN(t) ? 0 : (t - this.now()) / 1000;
  },
};

export function setText(el, text) {
  const value = String(text ?? "");
  if (el.textContent !== value) el.textContent = value;
}

/** A connection banner helper: one element, text and style changed in place. */
export function connectionBanner(container, statusEl) {
  const banner = document.createElement("div");
  banner.className = "banner";
  banner.id = "conn-banner";
  banner.hidden = true;
  const text = document.createElement("p");
  banner.append(text);
  container.prepend(banner);
  let hideTimer = null;
  return (status, detail) => {
    clearTimeout(hideTimer);
    statusEl.dataset.conn = status === "reconnected" ? "open" : status;
    if (status === "open") {
      setText(statusEl, t("Connected"));
      banner.hidden = true;
    } else if (status === "reconnected") {
      setText(statusEl, t("Connected"));
      banner.className = "banner back";
      setText(text, t("Reconnected — you are up to date."));
      banner.hidden = false;
      hideTimer = setTimeout(() => (banner.hidden = true), 6000);
    } else if (status === "lost") {
      setText(statusEl, t("Offline"));
      banner.className = "banner lost";
      setText(text, t("Connection lost — reconnecting…"));
      banner.hidden = false;
    } else if (status === "connecting") {
      setText(statusEl, t("Connecting…"));
    } else if (status === "fatal") {
      setText(statusEl, t("Disconnected"));
      banner.className = "banner fatal";
      setText(text, detail || t("Disconnected."));
      banner.hidden = false;
    }
  };
}

const NON_EVENT_TYPES = new Set(["ack", "error", "pong", "stats", "snapshot", "resync"]);
const LIVE_TIME_TYPES = new Set(["snapshot", "pong", "stats", "ack"]);

let commandCounter = 0;
function clientId() {
  commandCounter += 1;
  const random = Math.random().toString(36).slice(2, 10);
  return `c${Date.now().toString(36)}-${commandCounter}-${random}`;
}

/**
 * One screen's websocket: ``/ws/agent`` or ``/ws/supervisor``.
 *
 * Each (re)connection takes a fresh one-minute token from ``/auth/ws-token`` and
 * sends ``last_seq`` (the last event or snapshot seq seen) so the server replays
 * what was missed, or answers ``resync`` + ``snapshot``. Pings every 15 s.
 * Reconnects with exponential backoff (0.5 s doubling to 15 s, with jitter), at
 * once when the browser comes back online. Close 4003: forbidden (stop);
 * 4009: session revoked (sign-in page); 4001: token refused (check the session).
 */
export class ScreenSocket {
  constructor(kind, { csrf, onMessage, onStatus, onFatal, heartbeatMs = 15000 }) {
    this.kind = kind;
    this.csrf = csrf;
    this.onMessage = onMessage;
    this.onStatus = onStatus || (() => {});
    this.onFatal = onFatal || (() => {});
    this.heartbeatMs = heartbeatMs;
    this.lastSeq = null;
    this.ws = null;
    this.attempt = 0;
    this.connecting = false;
    this.stopped = false;
    this.everLive = false;
    this.lost = false;
    this.pending = new Map();
    this.retryTimer = null;
    this.pingTimer = null;
    this.lastHeard = 0;
  }

  start() {
    window.addEventListener("online", () => this.retryNow());
    this.onStatus("connecting");
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this._stopPing();
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onclose = ws.onmessage = ws.onerror = null;
      ws.close(1000, "page closed");
    }
  }

  get isOpen() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  retryNow() {
    if (this.stopped || this.connecting || this.ws) return;
    this.attempt = 0;
    this.connect();
  }

  async connect() {
    if (this.stopped || this.connecting) return;
    clearTimeout(this.retryTimer);
    this.connecting = true;
    let token;
    try {
      const r = await api("/auth/ws-token", { method: "POST", csrf: this.csrf });
      if (r.status === 401) {
        this.connecting = false;
        this._fatal("signed_out");
        return;
      }
      if (!r.ok) throw new Error(`ws-token ${r.status}`);
      token = r.data.token;
    } catch {
      this.connecting = false;
      this._retryLater();
      return;
    }
    const url = new URL(`/ws/${this.kind}`, location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("token", token);
    if (this.lastSeq !== null) url.searchParams.set("last_seq", String(this.lastSeq));
    let ws;
    try {
      ws = new WebSocket(url);
    } catch {
      this.connecting = false;
      this._retryLater();
      return;
    }
    this.ws = ws;
    this.connecting = false;
    this.lastHeard = Date.now();
    ws.onmessage = (event) => this._received(ws, event);
    ws.onclose = (event) => this._closed(ws, event.code, event.reason);
    ws.onopen = () => {
      // An immediate ping: its pong (sent after the catch-up) proves the handshake
      // was accepted, even when nothing was missed and no snapshot comes.
      ws.send(JSON.stringify({ type: "ping" }));
      this._startPing(ws);
    };
  }

  _received(ws, event) {
    if (ws !== this.ws) return;
    this.lastHeard = Date.now();
    let msg;
    try {
      msg = JSON.parse(event.data);
    } catch {
      return;
    }
    if (this.attempt !== 0 || !this.everLive || this.lost) {
      this.attempt = 0;
      const wasLost = this.lost;
      this.lost = false;
      this.everLive = true;
      this.onStatus(wasLost ? "reconnected" : "open");
    }
    if (LIVE_TIME_TYPES.has(msg.type) && msg.at) clock.observe(msg.at);
    if (msg.type === "snapshot" && typeof msg.seq === "number") {
      this.lastSeq = msg.seq;
    } else if (!NON_EVENT_TYPES.has(msg.type) && typeof msg.seq === "number") {
      if (this.lastSeq === null || msg.seq > this.lastSeq) this.lastSeq = msg.seq;
    }
    if (msg.type === "ack" || msg.type === "error") {
      const id = msg.data && msg.data.client_id;
      const waiting = id ? this.pending.get(id) : undefined;
      if (waiting) {
        this.pending.delete(id);
        clearTimeout(waiting.timer);
        if (msg.type === "ack") waiting.resolve(msg.data);
        else waiting.reject(msg.data);
        return;
      }
    }
    if (msg.type === "pong") return;
    this.onMessage(msg);
  }

  _closed(ws, code, reason) {
    if (ws !== this.ws) return;
    this.ws = null;
    this._stopPing();
    for (const [, waiting] of this.pending) {
      clearTimeout(waiting.timer);
      waiting.reject({ code: "disconnected", message: t("The connection dropped; try again.") });
    }
    this.pending.clear();
    if (this.stopped) return;
    if (code === 4003) {
      this._fatal("forbidden", reason);
      return;
    }
    if (code === 4009) {
      this._fatal("revoked", reason);
      return;
    }
    if (this.everLive && !this.lost) {
      this.lost = true;
      this.onStatus("lost");
    }
    if (code === 4001) {
      // The token was refused: still signed in? Otherwise, to the sign-in page.
      whoAmI()
        .then((me) => (me ? this._retryLater() : this._fatal("signed_out")))
        .catch(() => this._retryLater());
      return;
    }
    this._retryLater();
  }

  _fatal(kind, reason) {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.onStatus("fatal", kind === "forbidden" ? t("Not allowed here.") : t("Signed out."));
    this.onFatal(kind, reason);
  }

  _retryLater() {
    if (this.stopped) return;
    if (this.everLive && !this.lost) {
      this.lost = true;
      this.onStatus("lost");
    }
    if (!this.everLive && this.attempt >= 2 && !this.lost) {
      this.lost = true; // never connected yet, and still failing: say so
      this.onStatus("lost");
    }
    const base = Math.min(15000, 500 * 2 ** this.attempt);
    const delay = base / 2 + Math.random() * (base / 2);
    this.attempt = Math.min(this.attempt + 1, 10);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  _startPing(ws) {
    this._stopPing();
    this.pingTimer = setInterval(() => {
      if (ws !== this.ws) return;
      // Nothing heard for 2.5 heartbeats (the server answers every ping): a dead link.
      if (Date.now() - this.lastHeard > this.heartbeatMs * 2.5) {
        ws.onclose = ws.onmessage = ws.onerror = null;
        try {
          ws.close(4000, "heartbeat lost");
        } catch {
          /* already closing */
        }
        this._closed(ws, 1006, "heartbeat lost");
        return;
      }
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "ping" }));
    }, this.heartbeatMs);
  }

  _stopPing() {
    clearInterval(this.pingTimer);
    this.pingTimer = null;
  }

  /** Send a command; resolves with the ack's data, rejects with ``{code, message, field}``. */
  command(command, args = {}) {
    return new Promise((resolve, reject) => {
      if (!this.isOpen) {
        reject({ code: "offline", message: t("Not connected — try again when the connection is back.") });
        return;
      }
      const id = clientId();
      const timer = setTimeout(() => {
        if (this.pending.delete(id)) {
          reject({ code: "timeout", message: t("No answer from the server; try again.") });
        }
      }, 10000);
      this.pending.set(id, { resolve, reject, timer });
      this.ws.send(JSON.stringify({ type: "command", client_id: id, command, args }));
    });
  }
}

/** Refuse the page (wrong role): a clear message and a way out; nothing else runs. */
export function showNotAllowed(main, { me, wanted }) {
  main.replaceChildren();
  const conn = document.getElementById("conn-status");
  if (conn) conn.hidden = true;
  const box = document.createElement("section");
  box.className = "card not-allowed";
  box.id = "not-allowed";
  box.setAttribute("role", "alert");
  const h = document.createElement("h2");
  h.textContent = t("Not allowed");
  const p = document.createElement("p");
  p.textContent = me
    ? t("This page is for {wanted}. You are signed in as {username} ({role}).", {
        wanted: t(wanted),
        username: me.username,
        role: me.role,
      })
    : t("This page is for {wanted}.", { wanted: t(wanted) });
  const links = document.createElement("p");
  links.className = "actions";
  if (me) {
    const own = document.createElement("a");
    own.className = "button secondary";
    own.href = pageForRole(me.role);
    own.textContent = t("Go to your page");
    links.append(own);
  }
  const other = document.createElement("a");
  other.className = "button secondary";
  other.href = "/login";
  other.textContent = t("Sign in as someone else");
  links.append(other);
  box.append(h, p, links);
  main.append(box);
}
