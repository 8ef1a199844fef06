// The warm hand-over on the volunteer screen (#consult-panel, put above the script):
// after Needs support the volunteer is `consulting` — the caller on hold, the
// specialists rung — until a specialist answers (the call is theirs, wrap-up) or
// the fallback time passes (the caller is back; the script panel shows the partner
// helpline's number to read). Fed by agent.js's bus (docs/telephony.md, the warm
// hand-over); it sends nothing.

import { bus, screen } from "/static/agent-bus.js";
import { clock } from "/static/common.js";
import { t } from "/static/i18n.js";

const panel = document.createElement("section");
panel.className = "card consult-panel";
panel.id = "consult-panel";
panel.setAttribute("role", "status");
panel.setAttribute("aria-live", "polite");
panel.hidden = true;
const title = document.createElement("h2");
const line = document.createElement("p");
const detail = document.createElement("p");
detail.className = "hint";
panel.append(title, line, detail);
const script = document.getElementById("script-panel");
if (script && script.parentNode) script.parentNode.insertBefore(panel, script);

// {phase: "waiting" | "handed_over" | "no_specialist" | "hung_up", callId, until}
let current = null;

function render() {
  panel.hidden = !current;
  if (!current) return;
  title.textContent = t("Needs support");
  panel.dataset.phase = current.phase;
  if (current.phase === "waiting") {
    line.textContent = t("Waiting for a specialist…");
    const left = current.until ? Math.ceil(clock.until(current.until)) : null;
    detail.textContent =
      left !== null && left > 0
        ? t("The caller is on hold and hears a message. Stay on the line: if no specialist answers within {seconds} s, the caller comes back to you.", { seconds: left })
        : t("The caller is on hold and hears a message. Stay on the line.");
  } else if (current.phase === "handed_over") {
    line.textContent = t("A specialist took the call.");
    detail.textContent = t("The caller is with the specialist now, with the call's context.");
  } else if (current.phase === "no_specialist") {
    line.textContent = t("No specialist was free in time.");
    detail.textContent = t("The caller is back with you: read them the partner helpline's number (script below).");
  } else {
    line.textContent = t("The caller hung up while on hold.");
    detail.textContent = "";
  }
}

function waiting(callId, until) {
  current = { phase: "waiting", callId, until };
}

function onMessage(msg) {
  const d = msg.data || {};
  switch (msg.type) {
    case "snapshot": {
      const call = d.call;
      current = null;
      if (d.agent && d.agent.state === "consulting" && call) {
        waiting(call.id, call.consult ? call.consult.until : null);
      }
      break;
    }
    case "agent.state":
      if (d.state === "consulting") {
        if (!current || current.phase !== "waiting") waiting(screen.call ? screen.call.id : null, null);
      } else if (d.state === "available" || d.state === "paused" || d.state === "logged_out") {
        current = null;
      }
      break;
    case "call.consulting":
      waiting(d.call_id, d.fallback_until);
      break;
    case "call.transferred":
      if (current && d.by === "consult") current = { phase: "handed_over", callId: d.call_id };
      break;
    case "call.consult_ended":
      if (current) {
        current = {
          phase: d.outcome === "no_specialist" ? "no_specialist" : "hung_up",
          callId: d.call_id,
        };
      }
      break;
    case "call.offered":
      current = null; // another call: the hand-over is over
      break;
    default:
      return;
  }
  render();
}

bus.addEventListener("message", (event) => onMessage(event.detail));
// The countdown while waiting.
setInterval(() => {
  if (current && current.phase === "waiting") render();
}, 1000);
