// The supervisor screen's expected waits and callbacks (docs/surge.md): a column of
// the live queue table (the wait a caller joining now would have), the waiting
// calls and callbacks in the router's order with each one's expected wait, and the
// callbacks' own figures with those that failed or expired. Fed by the same
// once-a-second ``stats`` messages as the rest of the screen.

import { fmtSeconds, setText } from "/static/common.js";
import { t } from "/static/i18n.js";

const $ = (id) => document.getElementById(id);

/** An expected wait in words: null means nobody serves the queue. */
export function waitText(seconds) {
  return seconds === null || seconds === undefined ? t("unknown") : fmtSeconds(seconds);
}

/** The expected-wait cell of a queue row (added after "Longest wait"). */
export function addWaitCell(tr, before) {
  const td = document.createElement("td");
  td.className = "num";
  const big = document.createElement("span");
  big.className = "big";
  big.dataset.metric = "expected-wait";
  const sub = document.createElement("span");
  sub.className = "sub";
  sub.dataset.metric = "expected-wait-basis";
  td.append(big, sub);
  tr.insertBefore(td, before || null);
  return { expected: big, basis: sub };
}

export function renderWaitCell(cells, q) {
  setText(cells.expected, waitText(q.expected_wait_seconds));
  const handle = Math.round(q.handle_seconds || 0);
  const basis = t("{serving} serving · {free} free · {handle} s a call", {
    serving: q.serving_agents || 0,
    free: q.free_agents || 0,
    handle,
  });
  setText(cells.basis, basis);
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const [text, cls] of cells) {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    td.textContent = text;
    tr.append(td);
  }
  return tr;
}

/** The waiting calls and callbacks, and the callbacks' figures, of every queue. */
export function renderWaiting(queues) {
  const body = $("waiting-body");
  const cbBody = $("callbacks-body");
  const failed = $("callbacks-failed");
  if (!body || !cbBody || !failed) return;
  const waiting = [];
  const figures = [];
  const notDone = [];
  for (const q of queues) {
    for (const w of q.waiting_list || []) {
      const tr = row([
        [q.queue, ""],
        [String(w.position), "num"],
        [w.kind === "callback" ? t("Callback") : t("Call"), ""],
        [`#${w.call_id}`, "num"],
        [waitText(w.expected_wait_seconds), "num"],
      ]);
      tr.dataset.callId = String(w.call_id);
      tr.dataset.kind = w.kind;
      waiting.push(tr);
    }
    const cb = q.callbacks;
    if (cb) {
      const tr = row([
        [q.queue, ""],
        [String(cb.requested), "num"],
        [String(cb.waiting + cb.in_progress), "num"],
        [String(cb.completed), "num"],
        [String(cb.failed), "num"],
        [String(cb.expired), "num"],
      ]);
      tr.dataset.queueId = String(q.queue_id);
      figures.push(tr);
      for (const c of cb.not_completed || []) {
        const li = document.createElement("li");
        li.dataset.callbackId = String(c.callback_id);
        const params = { queue: q.queue, id: c.callback_id, caller: c.caller || "?", attempts: c.attempts };
        li.textContent =
          c.state === "expired"
            ? t("{queue}: callback #{id} to {caller} expired", params)
            : t("{queue}: callback #{id} to {caller} failed after {attempts} attempts", params);
        notDone.push(li);
      }
    }
  }
  body.replaceChildren(...waiting);
  cbBody.replaceChildren(...figures);
  failed.replaceChildren(...notDone);
  $("waiting-empty").hidden = waiting.length > 0;
  $("callbacks-failed-empty").hidden = notDone.length > 0;
}
