// The staffing planner, on the organiser and the supervisor screens (each page holds an
// empty <section id="planner">; this module fills it). The rundown is typed in as CSV,
// imported from a file, or derived from the campaign's own calls; the server reads it
// (POST /planning/rundowns/import: problems come back line by line), computes the plan
// (POST /planning/plan) and its CSV (POST /planning/plan.csv). The chart is inline SVG
// drawn here: seats needed per 15 minutes as bars, seats scheduled as a line.
// The campaign: the organiser screen's #campaign select, else the login's campaign,
// else the first campaign the login may see. docs/surge.md, "The staffing planner".

import { api, setText, whoAmI } from "/static/common.js";
import { formatPercent, t, translateTree } from "/static/i18n.js";

const SVG = "http://www.w3.org/2000/svg";
const EXAMPLE = [
  "start,end,calls_per_15min,label,seats",
  "20:00,20:30,40,Opening,12",
  "20:30,20:45,150,Appeal 1,25",
  "20:45,21:30,60,,15",
].join("\n");

const MARKUP = /* html */ `
  <h2 id="planner-title">Staffing plan</h2>
  <p class="hint">Seats needed every 15 minutes for the show's rundown (Erlang C). One segment a line:
    <code translate="no">start,end,calls_per_15min,label,seats</code>, times HH:MM on quarter hours in the campaign's time zone;
    label and seats may be left empty.</p>
  <form id="planner-form" novalidate>
    <div class="field">
      <label for="planner-rundown">Rundown (CSV, with its header line)</label>
      <textarea id="planner-rundown" rows="6" spellcheck="false" class="planner-rundown"></textarea>
    </div>
    <div class="org-filters">
      <div class="field">
        <label for="planner-file">Rundown file (CSV)</label>
        <input id="planner-file" type="file" accept=".csv,text/csv,text/plain">
      </div>
      <div class="field org-filters-go">
        <button id="planner-derive" type="button" class="secondary">From the campaign's calls</button>
      </div>
    </div>
    <div class="org-filters">
      <div class="field">
        <label for="planner-talk">Talk seconds</label>
        <input id="planner-talk" type="number" min="1" step="1" aria-describedby="planner-defaults">
      </div>
      <div class="field">
        <label for="planner-wrapup">Wrap-up seconds</label>
        <input id="planner-wrapup" type="number" min="0" step="1" aria-describedby="planner-defaults">
      </div>
      <div class="field">
        <label for="planner-target">Answered within target (%)</label>
        <input id="planner-target" type="number" min="0" max="99.9" step="any" value="80">
      </div>
      <div class="field">
        <label for="planner-threshold">Within seconds</label>
        <input id="planner-threshold" type="number" min="0" step="1" value="20">
      </div>
      <div class="field">
        <label for="planner-max-wait">Maximum average wait (s)</label>
        <input id="planner-max-wait" type="number" min="1" step="1">
      </div>
      <div class="field">
        <label for="planner-seats">Seats scheduled</label>
        <input id="planner-seats" type="text" inputmode="numeric" placeholder="12 or 10,12,14" aria-describedby="planner-seats-hint">
      </div>
    </div>
    <p id="planner-defaults" class="hint"></p>
    <p id="planner-seats-hint" class="hint">One number for every interval, or one per interval; empty: the rundown's seats column.</p>
    <p class="actions">
      <button id="planner-compute" type="submit">Compute plan</button>
      <button id="planner-csv" type="button" class="secondary" disabled>Download CSV</button>
    </p>
  </form>
  <p id="planner-status" class="status-line" role="status"></p>
  <ul id="planner-problems" class="recon-problems" aria-label="Problems in the rundown"></ul>
  <p id="planner-summary"></p>
  <figure class="planner-figure">
    <div id="planner-chart" class="planner-chart"></div>
    <figcaption class="hint"><span class="planner-key planner-key-needed"></span> seats needed
      <span class="planner-key planner-key-scheduled"></span> seats scheduled</figcaption>
  </figure>
  <div class="table-wrap">
    <table id="planner-table">
      <caption class="sr-only">The plan, per 15-minute interval</caption>
      <thead><tr>
        <th scope="col">Interval</th><th scope="col">Segment</th><th scope="col">Calls</th>
        <th scope="col">Load (erlangs)</th><th scope="col">Seats needed</th><th scope="col">Scheduled</th>
        <th scope="col">P(wait)</th><th scope="col">Service level</th><th scope="col">Average wait</th><th scope="col">Gap</th>
      </tr></thead>
      <tbody></tbody>
    </table>
  </div>`;

const section = document.getElementById("planner");
let me = null;
let lastBody = null;

const $ = (id) => document.getElementById(id);

function status(text, isError = false) {
  const el = $("planner-status");
  el.classList.toggle("error", isError);
  setText(el, text);
}

function showProblems(problems) {
  const list = $("planner-problems");
  list.replaceChildren();
  for (const p of problems || []) {
    const li = document.createElement("li");
    const where = p.line ? t("Line {line}", { line: p.line }) : t("File");
    li.textContent = `${where}${p.column ? `, ${p.column}` : ""}: ${p.reason}`;
    list.append(li);
  }
}

async function campaignId() {
  const select = $("campaign");
  if (select && select.value) return Number(select.value);
  if (me && me.campaign_id) return me.campaign_id;
  const r = await api("/campaigns");
  return r.ok && r.data.length ? r.data[0].id : null;
}

function number(id) {
  const raw = $(id).value.trim();
  return raw === "" ? null : Number(raw);
}

function seatsScheduled() {
  const raw = $("planner-seats").value.trim();
  if (raw === "") return null;
  const parts = raw.split(/[,;\s]+/).filter(Boolean).map(Number);
  return parts.length === 1 && !raw.includes(",") ? parts[0] : parts;
}

function segmentsAsCsv(segments) {
  const cell = (v) => {
    const text = v === null || v === undefined ? "" : String(v);
    return /[",\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
  };
  const lines = ["start,end,calls_per_15min,label,seats"];
  for (const s of segments) {
    lines.push([s.start, s.end, s.calls_per_15min, s.label, s.seats].map(cell).join(","));
  }
  return lines.join("\n");
}

/** The rundown as the server reads it, or null (its problems shown). */
async function readRundown(body) {
  const response = await fetch("/planning/rundowns/import", {
    method: "POST",
    headers: { "Content-Type": "text/csv", Accept: "application/json", "X-CSRF-Token": me.csrf_token },
    credentials: "same-origin",
    body,
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    status(data.message || t("The rundown was refused ({status}).", { status: response.status }), true);
    showProblems(data.problems);
    return null;
  }
  showProblems([]);
  return data.segments;
}

async function planBody() {
  const segments = await readRundown($("planner-rundown").value);
  if (!segments) return null;
  const body = { segments, campaign_id: await campaignId() };
  const talk = number("planner-talk");
  const wrap = number("planner-wrapup");
  const target = number("planner-target");
  const threshold = number("planner-threshold");
  const maxWait = number("planner-max-wait");
  const seats = seatsScheduled();
  if (talk !== null) body.talk_seconds = talk;
  if (wrap !== null) body.wrapup_seconds = wrap;
  if (target !== null) body.service_level_target = target / 100;
  if (threshold !== null) body.threshold_seconds = threshold;
  if (maxWait !== null) body.max_average_wait_seconds = maxWait;
  if (seats !== null) body.scheduled_seats = seats;
  if (body.campaign_id === null) delete body.campaign_id;
  return body;
}

function percent(value) {
  return value === null || value === undefined ? "–" : formatPercent(value);
}

function row(interval) {
  const tr = document.createElement("tr");
  tr.dataset.start = interval.start;
  const cells = [
    `${interval.start}–${interval.end}`,
    interval.label,
    String(interval.calls_per_15min),
    interval.offered_load_erlangs.toFixed(2),
    String(interval.seats_needed),
    interval.seats_scheduled === null ? "–" : String(interval.seats_scheduled),
    interval.probability_waiting === null ? "–" : interval.probability_waiting.toFixed(3),
    percent(interval.service_level),
    interval.overloaded
      ? t("no limit")
      : interval.average_wait_seconds === null
        ? "–"
        : t("{seconds} s", { seconds: interval.average_wait_seconds.toFixed(1) }),
    interval.gap === null
      ? "–"
      : interval.gap > 0
        ? t("+{gap} short", { gap: interval.gap })
        : String(interval.gap),
  ];
  const columns = ["interval", "label", "calls", "load", "needed", "scheduled", "wait", "level", "asa", "gap"];
  cells.forEach((text, i) => {
    const td = document.createElement(i === 0 ? "th" : "td");
    if (i === 0) td.scope = "row";
    if (i >= 2) td.className = "num";
    td.dataset.col = columns[i];
    td.textContent = text;
    tr.append(td);
  });
  if (interval.gap !== null && interval.gap > 0) tr.classList.add("planner-short");
  return tr;
}

function svg(name, attributes = {}, text = null) {
  const el = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) el.setAttribute(key, String(value));
  if (text !== null) el.textContent = text;
  return el;
}

function niceStep(top) {
  const rough = top / 5;
  const power = 10 ** Math.floor(Math.log10(Math.max(rough, 1)));
  return [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough) || power * 10;
}

/** Bars: seats needed; a stepped line: seats scheduled (where known). */
function drawChart(intervals) {
  const box = $("planner-chart");
  box.replaceChildren();
  if (!intervals.length) return;
  const left = 44, right = 12, top = 12, bottom = 40;
  const barWidth = Math.max(8, Math.min(40, Math.floor(760 / intervals.length)));
  const width = left + right + barWidth * intervals.length;
  const height = 240;
  const plot = height - top - bottom;
  const highest = Math.max(1, ...intervals.map((i) => Math.max(i.seats_needed, i.seats_scheduled ?? 0)));
  const step = niceStep(highest);
  const ceiling = Math.ceil(highest / step) * step;
  const y = (v) => top + plot - (v / ceiling) * plot;
  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: "img",
    "aria-labelledby": "planner-chart-title",
    class: "planner-svg",
  });
  chart.append(
    svg(
      "title",
      { id: "planner-chart-title" },
      t("Seats needed (bars) and seats scheduled (line) per 15 minutes; the table below has the same figures"),
    ),
  );
  for (let v = 0; v <= ceiling; v += step) {
    chart.append(svg("line", { x1: left, x2: width - right, y1: y(v), y2: y(v), class: "planner-grid" }));
    chart.append(svg("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end", class: "planner-axis" }, String(v)));
  }
  const labelEvery = Math.ceil(intervals.length / Math.max(1, Math.floor((width - left) / 48)));
  let path = "";
  intervals.forEach((interval, n) => {
    const x = left + n * barWidth;
    const bar = svg("rect", {
      x: x + 1,
      y: y(interval.seats_needed),
      width: barWidth - 2,
      height: Math.max(0, top + plot - y(interval.seats_needed)),
      class: interval.gap !== null && interval.gap > 0 ? "planner-needed planner-short" : "planner-needed",
      "data-start": interval.start,
      "data-needed": interval.seats_needed,
    });
    const needed = { start: interval.start, seats: interval.seats_needed };
    bar.append(svg("title", {}, t("{start}: {seats} seats needed", needed)));
    chart.append(bar);
    if (interval.seats_scheduled !== null) {
      const level = y(interval.seats_scheduled);
      path += `${path ? "L" : "M"}${x},${level}L${x + barWidth},${level}`;
      chart.append(svg("circle", {
        cx: x + barWidth / 2, cy: level, r: 2.5, class: "planner-scheduled-mark",
        "data-start": interval.start, "data-scheduled": interval.seats_scheduled,
      }));
    } else if (path) {
      chart.append(svg("path", { d: path, class: "planner-scheduled" }));
      path = "";
    }
    if (n % labelEvery === 0) {
      chart.append(svg("text", { x: x + barWidth / 2, y: height - bottom + 16, "text-anchor": "middle", class: "planner-axis" }, interval.start));
    }
  });
  if (path) chart.append(svg("path", { d: path, class: "planner-scheduled" }));
  chart.append(svg("line", { x1: left, x2: width - right, y1: top + plot, y2: top + plot, class: "planner-baseline" }));
  box.append(chart);
}

function render(plan) {
  const tbody = document.querySelector("#planner-table tbody");
  tbody.replaceChildren(...plan.intervals.map(row));
  drawChart(plan.intervals);
  const s = plan.summary;
  const h = plan.handle;
  const source = h.talk_source === "measured"
    ? t("measured on {count} answered calls", { count: h.answered_calls })
    : h.talk_source;
  const short = s.intervals_short === 1
    ? t("1 interval short of seats")
    : t("{count} intervals short of seats", { count: s.intervals_short });
  setText(
    $("planner-summary"),
    t("Peak {peak} seats needed; {hours} seat-hours; {short}. Handle time {handle} s (talk {talk} s {source}, wrap-up {wrapup} s).", {
      peak: s.peak_seats_needed,
      hours: s.seat_hours_needed,
      short,
      handle: h.handle_seconds,
      talk: h.talk_seconds,
      source,
      wrapup: h.wrapup_seconds,
    }),
  );
}

async function compute() {
  status(t("Computing…"));
  const body = await planBody();
  if (!body) return;
  const r = await api("/planning/plan", { method: "POST", body, csrf: me.csrf_token });
  if (!r.ok) {
    const field = r.data && r.data.field ? ` (${r.data.field})` : "";
    const why = (r.data && r.data.message) || t("Refused ({status})", { status: r.status });
    status(`${why}${field}`, true);
    return;
  }
  lastBody = body;
  $("planner-csv").disabled = false;
  render(r.data);
  section.dataset.planned = "true";
  status(t("Plan of {count} intervals.", { count: r.data.intervals.length }));
}

async function downloadCsv() {
  if (!lastBody) return;
  const response = await fetch("/planning/plan.csv", {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": me.csrf_token },
    credentials: "same-origin",
    body: JSON.stringify(lastBody),
  });
  if (!response.ok) {
    status(t("The CSV was refused ({status}).", { status: response.status }), true);
    return;
  }
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = "staffing-plan.csv";
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

async function importFile() {
  const file = $("planner-file").files[0];
  if (!file) return;
  const segments = await readRundown(await file.arrayBuffer());
  if (!segments) return;
  $("planner-rundown").value = segmentsAsCsv(segments);
  await compute();
}

async function derive() {
  const id = await campaignId();
  if (id === null) return status(t("No campaign to derive from."), true);
  const r = await api(`/planning/rundowns/derived?campaign_id=${encodeURIComponent(id)}`);
  if (!r.ok) return status((r.data && r.data.message) || t("Refused ({status}).", { status: r.status }), true);
  $("planner-rundown").value = segmentsAsCsv(r.data.segments);
  await compute();
}

async function showDefaults() {
  const id = await campaignId();
  if (id === null) return;
  const r = await api(`/planning/handle-times?campaign_id=${encodeURIComponent(id)}`);
  if (!r.ok) return;
  $("planner-talk").placeholder = String(r.data.talk_seconds);
  $("planner-wrapup").placeholder = String(r.data.wrapup_seconds);
  setText(
    $("planner-defaults"),
    r.data.source === "measured"
      ? t("Empty: the campaign's own means over {count} answered calls (talk {talk} s, wrap-up {wrapup} s).", {
          count: r.data.answered_calls,
          talk: r.data.talk_seconds,
          wrapup: r.data.wrapup_seconds,
        })
      : t("Empty: {talk} s of talk and {wrapup} s of wrap-up (the campaign has no answered call yet).", {
          talk: r.data.talk_seconds,
          wrapup: r.data.wrapup_seconds,
        }),
  );
}

async function main() {
  if (!section) return;
  me = await whoAmI().catch(() => null);
  if (!me || !["organiser", "supervisor", "admin"].includes(me.role)) return;
  section.innerHTML = MARKUP; // fixed markup, no data in it
  translateTree(section);
  $("planner-rundown").value = EXAMPLE;
  $("planner-form").addEventListener("submit", (event) => {
    event.preventDefault();
    compute();
  });
  $("planner-csv").addEventListener("click", downloadCsv);
  $("planner-file").addEventListener("change", importFile);
  $("planner-derive").addEventListener("click", derive);
  const select = $("campaign");
  if (select) select.addEventListener("change", showDefaults);
  section.dataset.ready = "true";
  await showDefaults();
}

main();
