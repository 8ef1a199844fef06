// The call script on the volunteer screen (#script-panel), pushed by the rules as
// `script.show` (or found in the snapshot after a reconnection), with the Prank and
// Needs-support buttons. A script's own buttons go back as `script_choice`; what
// they do is decided by the campaign's rules (docs/rules.md). The script's own texts
// come from the server in the volunteer's language; the panel's through i18n.js.
// When the call is over (no call, or transferred) the script leaves the screen.

import { bus, screen } from "/static/agent-bus.js";
import { t } from "/static/i18n.js";

const panel = document.getElementById("script-panel");

let current = { callId: null, script: null, busy: false, note: "" };

function el(tag, { text, className, attrs } = {}) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  return node;
}

function talking() {
  return Boolean(screen.call && screen.call.state === "connected");
}

async function send(name, args, done) {
  current.busy = true;
  current.note = "";
  render();
  try {
    const ack = await screen.command(name, args);
    // The campaign's rules decide what a button does; none acting is worth saying.
    const acted = !ack || !Array.isArray(ack.rules) || ack.rules.length > 0;
    current.note = acted ? done : t("Nothing was set up for this: ask a supervisor.");
  } catch (err) {
    current.note = t("Not done: {why}", { why: err && err.message ? err.message : String(err) });
  } finally {
    current.busy = false;
    render();
  }
}

function stepNode(step, index) {
  const item = el("li", { className: `script-step script-step-${step.kind}` });
  item.dataset.step = String(index + 1);
  if (step.kind === "say") {
    item.append(el("p", { text: step.text, className: "script-say" }));
  } else if (step.kind === "ask") {
    item.append(el("p", { text: step.text, className: "script-ask" }));
  } else if (step.kind === "checklist") {
    const list = el("ul", { className: "script-checks" });
    step.items.forEach((text, n) => {
      const id = `script-check-${index}-${n}`;
      const line = el("li");
      const box = el("input", { attrs: { type: "checkbox", id } });
      line.append(box, el("label", { text, attrs: { for: id } }));
      list.append(line);
    });
    item.append(list);
  } else if (step.kind === "choice") {
    item.append(el("p", { text: step.text, className: "script-ask" }));
    const row = el("div", { className: "actions" });
    for (const button of step.buttons) {
      const node = el("button", {
        text: button.label,
        attrs: { type: "button", "data-button": button.id },
      });
      node.disabled = current.busy || !talking();
      node.addEventListener("click", () =>
        send(
          "script_choice",
          { script: current.script.name, button: button.id },
          t("{button}: done.", { button: button.label }),
        ),
      );
      row.append(node);
    }
    item.append(row);
  }
  return item;
}

function render() {
  const children = [el("h2", { text: t("Script"), attrs: { id: "script-title" } })];
  const script = current.script;
  const over = !screen.call || screen.call.state === "transferred";
  if (!script || over || script.call_id !== screen.call.id) {
    children.push(el("p", { text: t("The call script appears here."), className: "placeholder" }));
  } else {
    children.push(el("h3", { text: script.title, className: "script-title" }));
    const steps = el("ol", { className: "script-steps", attrs: { "aria-live": "polite" } });
    steps.dataset.script = script.name;
    script.steps.forEach((step, index) => steps.append(stepNode(step, index)));
    children.push(steps);
  }
  const flags = el("div", { className: "actions script-flags" });
  const prank = el("button", {
    text: t("Prank call"),
    className: "secondary",
    attrs: { type: "button", id: "flag-prank-btn" },
  });
  const support = el("button", {
    text: t("Needs support"),
    className: "secondary",
    attrs: { type: "button", id: "needs-support-btn" },
  });
  prank.disabled = support.disabled = current.busy || !talking();
  prank.addEventListener("click", () => send("flag_prank", {}, t("Prank call noted.")));
  support.addEventListener("click", () =>
    send("needs_support", {}, t("Handing over to the specialists.")),
  );
  flags.append(prank, support);
  children.push(flags);
  children.push(el("p", { text: current.note, className: "status-line", attrs: { role: "status", id: "script-status" } }));
  panel.replaceChildren(...children);
}

bus.addEventListener("message", (event) => {
  const msg = event.detail;
  if (msg.type === "script.show") {
    current.script = msg.data.script;
    current.callId = msg.data.call_id;
    render();
  } else if (msg.type === "snapshot") {
    const call = msg.data.call;
    current.script = call && call.script ? call.script : null;
    current.callId = call ? call.id : null;
    render();
  }
});

bus.addEventListener("call", () => {
  if (!screen.call || screen.call.state === "transferred") {
    // Over: nothing of this call stays (the script may name the caller).
    current = { ...current, callId: null, script: null, note: "" };
  }
  render();
});

bus.addEventListener("ready", render); // the catalogue is loaded by then

render();
