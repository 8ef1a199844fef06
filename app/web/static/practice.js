// Practice calls on the volunteer screen (#practice, app/practice, docs/roster.md).
//
// A scripted caller is played on the real panels: the caller details (caller-pop.js),
// the script (script-panel.js) and the pledge form (pledge-form.js) get it through the
// bus exactly as they get a real call (`call`, then `call.offered` with the pop, then
// `script.show`). While it lasts, `screen.practice` is set: the pledge form saves to
// the practice call, and the script panel's buttons (Prank, Needs support, a script's
// own) go to the practice call instead of the socket. A PRACTICE banner says so.
// Nothing of it reaches a real figure: the server keeps it in the practice call only.
// The scenarios' titles, summaries, lines and the scorecard's sentences are message ids
// of the catalogue (app/practice, N_()): shown through t().

import { api, el } from "/static/common.js";
import { bus, publish, screen } from "/static/agent-bus.js";
import { t } from "/static/i18n.js";

const panel = document.getElementById("practice");
const bannerBox = document.getElementById("practice-banner");
const BUSY = new Set(["reserved", "on_call", "consulting", "wrap_up"]);

const S = {
  scenarios: [],
  call: null, // the practice call as the server gave it
  shownLines: 0,
  realCommand: null,
  busy: false,
  note: "",
  result: null, // the ended call, with its scorecard
  trained: null,
};

function csrf() {
  return screen.me ? screen.me.csrf_token : undefined;
}

function screenCallId(call) {
  return `practice-${call.id}`;
}

function failure(r) {
  return (r.data && r.data.message) || `HTTP ${r.status}`;
}

// --- the panels, driven through the bus -------------------------------------------

function showScript(script) {
  if (!script || !S.call) return;
  publish("message", {
    type: "script.show",
    data: { call_id: screenCallId(S.call), script: { ...script, call_id: screenCallId(S.call) } },
  });
}

async function practiceCommand(name, args = {}) {
  if (!S.call) return S.realCommand(name, args);
  let body;
  if (name === "flag_prank" || name === "needs_support") body = { action: name };
  else if (name === "script_choice") body = { action: name, script: args.script, button: args.button };
  else return S.realCommand(name, args); // not a call's button (a page's answer...)
  const r = await api(`/practice/calls/${S.call.id}/actions`, { method: "POST", body, csrf: csrf() });
  if (!r.ok) throw new Error(failure(r));
  if (r.data.script) showScript(r.data.script);
  return { rules: r.data.rules };
}

function putOnScreen(call) {
  S.call = call;
  S.shownLines = 1;
  S.result = null;
  S.realCommand = screen.command;
  screen.practice = { id: call.id };
  screen.command = practiceCommand;
  const id = screenCallId(call);
  screen.call = { id, state: "connected", caller: call.caller.display, practice: true };
  publish("call", { call: screen.call });
  publish("message", { type: "call.offered", data: { call_id: id, screen_pop: call.pop, practice: true } });
  showScript(call.script);
  bannerBox.replaceChildren(
    el(
      "div",
      { className: "banner practice", role: "status", id: "practice-banner-text" },
      el("p", {
        text: t("PRACTICE CALL: {title}. Not a real caller; nothing you save counts.", {
          title: t(call.scenario.title),
        }),
      }),
    ),
  );
}

function takeOffScreen() {
  if (screen.practice) {
    screen.practice = null;
    if (S.realCommand) screen.command = S.realCommand;
    if (screen.call && screen.call.practice) {
      screen.call = null;
      publish("call", { call: null });
    }
  }
  S.call = null;
  bannerBox.replaceChildren();
}

// --- the server ---------------------------------------------------------------------

async function loadTrained() {
  if (!screen.me || screen.me.agent_id === null) return;
  const r = await api(`/agents/${screen.me.agent_id}`);
  if (r.ok) S.trained = Boolean(r.data.trained);
}

async function start() {
  const select = document.getElementById("practice-scenario");
  if (!select || S.busy) return;
  S.busy = true;
  S.note = "";
  render();
  try {
    const r = await api("/practice/calls", { method: "POST", body: { scenario: select.value }, csrf: csrf() });
    if (r.ok) putOnScreen(r.data);
    else S.note = failure(r);
  } catch {
    S.note = t("Network problem: try again.");
  } finally {
    S.busy = false;
    render();
  }
}

async function readBack() {
  const input = document.getElementById("practice-readback");
  if (!S.call || !input) return;
  const r = await api(`/practice/calls/${S.call.id}/actions`, {
    method: "POST",
    body: { action: "read_back", reference: input.value },
    csrf: csrf(),
  });
  S.note = r.ok ? t("Read-back noted.") : failure(r);
  render();
}

async function end() {
  if (!S.call || S.busy) return;
  S.busy = true;
  render();
  try {
    const r = await api(`/practice/calls/${S.call.id}/end`, { method: "POST", csrf: csrf() });
    if (r.ok) {
      S.result = r.data;
      S.trained = r.data.trained;
      S.note = "";
      takeOffScreen();
    } else {
      S.note = failure(r);
    }
  } catch {
    S.note = t("Network problem: try again.");
  } finally {
    S.busy = false;
    render();
  }
}

// --- drawing --------------------------------------------------------------------------

/** A criterion's sentences in the page's language (older scorecards: the English). */
function scoreWords(item) {
  if (!Array.isArray(item.say)) return t(item.words);
  return item.say.map(([id, params]) => t(id, params || {})).join(" ");
}

function scorecard(result) {
  const list = el("ul", { className: "practice-scorecard", id: "practice-scorecard" });
  for (const item of result.scorecard || []) {
    const line = el("li", { "data-criterion": item.criterion, "data-passed": String(item.passed) });
    line.append(el("span", { className: "badge", text: item.passed ? t("✓ Passed") : t("✗ Not yet") }), ` ${scoreWords(item)}`);
    list.append(line);
  }
  return el(
    "div",
    { className: "practice-result", "aria-live": "polite" },
    el("h3", { text: t("Scorecard: {title}", { title: t(result.scenario.title) }) }),
    el("p", {
      id: "practice-verdict",
      className: "practice-verdict",
      "data-passed": String(result.passed),
      text: result.passed ? t("Passed") : t("Not passed: try it again"),
    }),
    list,
    el("p", {
      className: "hint",
      text: result.trained
        ? t("You are trained: you may take calls on every line.")
        : t("{passes} of {needed} passed practice calls needed to be trained.", {
            passes: result.passes,
            needed: result.passes_needed,
          }),
    }),
  );
}

function render() {
  if (!panel) return;
  const nodes = [el("h2", { id: "practice-title", text: t("Practice calls") })];
  if (S.call) {
    nodes.push(el("p", { className: "hint", text: t(S.call.scenario.summary) }));
    const lines = el("ol", { className: "practice-lines", id: "practice-lines", "aria-live": "polite" });
    S.call.lines
      .slice(0, S.shownLines)
      .forEach((text) => lines.append(el("li", { text: t("Caller: “{line}”", { line: t(text) }) })));
    nodes.push(lines);
    const actions = el("div", { className: "actions" });
    if (S.shownLines < S.call.lines.length) {
      const next = el("button", { type: "button", className: "secondary", id: "practice-next", text: t("Caller's next line") });
      next.addEventListener("click", () => {
        S.shownLines += 1;
        render();
      });
      actions.append(next);
    }
    nodes.push(actions);
    const input = el("input", { type: "text", id: "practice-readback", autocomplete: "off" });
    const readButton = el("button", { type: "button", className: "secondary", id: "practice-readback-btn", text: t("I read it back") });
    readButton.addEventListener("click", readBack);
    nodes.push(
      el(
        "div",
        { className: "field" },
        el("label", { for: "practice-readback", text: t("Pledge reference, as you read it back to the caller") }),
        input,
      ),
      el("div", { className: "actions" }, readButton),
    );
    const endButton = el("button", { type: "button", id: "practice-end", text: t("End practice call") });
    endButton.disabled = S.busy;
    endButton.addEventListener("click", end);
    nodes.push(el("div", { className: "actions" }, endButton));
  } else {
    nodes.push(
      el("p", {
        className: "hint",
        text: t("Practise on the training line: scripted callers on this screen. Nothing reaches the real figures."),
      }),
    );
    if (S.trained !== null) {
      nodes.push(el("p", { id: "practice-trained", text: S.trained ? t("You are trained.") : t("Not trained yet.") }));
    }
    const select = el("select", { id: "practice-scenario" });
    for (const scenario of S.scenarios) select.append(el("option", { value: scenario.name, text: t(scenario.title) }));
    const startButton = el("button", { type: "button", id: "practice-start", text: t("Start a practice call") });
    startButton.disabled = S.busy || !S.scenarios.length || (screen.agent && BUSY.has(screen.agent.state));
    startButton.addEventListener("click", start);
    nodes.push(
      el("div", { className: "field" }, el("label", { for: "practice-scenario", text: t("Caller") }), select),
      el("div", { className: "actions" }, startButton),
    );
    if (S.result) nodes.push(scorecard(S.result));
  }
  nodes.push(el("p", { className: "status-line", role: "status", id: "practice-status", text: S.note }));
  panel.replaceChildren(...nodes);
}

// A real call always wins: the practice call is ended and scored as it stands.
bus.addEventListener("call", ({ detail }) => {
  if (S.call && detail.call && !detail.call.practice) {
    const id = S.call.id;
    screen.practice = null;
    if (S.realCommand) screen.command = S.realCommand;
    S.call = null;
    bannerBox.replaceChildren();
    S.note = t("A real call came in: the practice call was ended.");
    api(`/practice/calls/${id}/end`, { method: "POST", csrf: csrf() }).then(render);
  }
  render();
});

bus.addEventListener("ready", async () => {
  const r = await api("/practice/scenarios");
  if (r.ok) S.scenarios = r.data;
  await loadTrained();
  // A practice call left open (the page was reloaded) comes back on screen.
  const mine = await api("/practice/calls");
  const open = mine.ok ? mine.data.filter((c) => c.state === "open").pop() : null;
  if (open && !screen.call) {
    const again = await api(`/practice/calls/${open.id}`);
    if (again.ok) putOnScreen(again.data);
  }
  render();
});

render();
