// The supervisor page's rules panels: alerts raised by the campaign's rules
// (`supervisor.alert`), and the blocklist (numbers with prank strikes or a block),
// kept through the REST API (GET/POST/DELETE /campaigns/{id}/blocklist).

import { api, whoAmI } from "/static/common.js";
import { N_, t } from "/static/i18n.js";

const $ = (id) => document.getElementById(id);
const MAX_ALERTS = 200;

let me = null;

function clockText(iso) {
  return new Date(iso).toLocaleTimeString([], { hour12: false });
}

// The campaign's kinds of alert, in words (others read as their name).
const KINDS = {
  rule: N_("rules"),
  stale_call: N_("call left hanging"),
  stranded_agent: N_("volunteer freed"),
  callback_failed: N_("callback failed"),
  callback_expired: N_("callback expired"),
};
const alertItems = new Map(); // event seq -> <li>

function kindText(kind) {
  return KINDS[kind] ? t(KINDS[kind]) : kind.replaceAll("_", " ");
}

function shownByFilter(alert) {
  const kind = $("alert-kind").value;
  if (kind && alert.kind !== kind) return false;
  return !($("alert-open").checked && alert.acknowledged_by);
}

function renderAck(item, alert) {
  item.querySelector(".alert-ack")?.remove();
  item.querySelector("button")?.remove();
  item.dataset.acknowledged = String(Boolean(alert.acknowledged_by));
  if (alert.acknowledged_by) {
    const note = document.createElement("span");
    note.className = "alert-ack";
    note.textContent = t("Acknowledged by {name} at {time}", {
      name: alert.acknowledged_by,
      time: clockText(alert.acknowledged_at),
    });
    item.append(note);
    return;
  }
  const button = document.createElement("button");
  button.type = "button";
  button.className = "secondary small";
  button.textContent = t("Acknowledge");
  button.addEventListener("click", () => acknowledge(alert.seq, button));
  item.append(button);
}

function alertItem(alert) {
  const item = document.createElement("li");
  item.dataset.seq = String(alert.seq);
  item.dataset.kind = alert.kind;
  const time = document.createElement("time");
  time.dateTime = alert.at;
  time.textContent = clockText(alert.at);
  const kind = document.createElement("span");
  kind.className = "alert-kind";
  kind.textContent = kindText(alert.kind);
  item.append(time, kind, document.createTextNode(alert.text));
  renderAck(item, alert);
  item.hidden = !shownByFilter(alert);
  item.alert = alert;
  return item;
}

function showAlerts(alerts) {
  const list = $("alerts");
  alertItems.clear();
  const items = alerts.map((alert) => {
    const item = alertItem(alert);
    alertItems.set(alert.seq, item);
    return item;
  });
  list.replaceChildren(...items);
  $("no-alerts").hidden = items.some((item) => !item.hidden);
}

async function loadAlerts() {
  const params = new URLSearchParams({ campaign_id: String(me.campaign_id), limit: "200" });
  if ($("alert-kind").value) params.set("kind", $("alert-kind").value);
  if ($("alert-open").checked) params.set("acknowledged", "false");
  const [alerts, kinds] = await Promise.all([
    api(`/alerts?${params}`),
    api(`/alerts/kinds?campaign_id=${me.campaign_id}`),
  ]);
  if (kinds.ok) {
    const select = $("alert-kind");
    const current = select.value;
    const options = [new Option(t("All kinds"), "")];
    for (const kind of kinds.data) options.push(new Option(kindText(kind), kind));
    select.replaceChildren(...options);
    select.value = kinds.data.includes(current) ? current : "";
  }
  if (alerts.ok) showAlerts(alerts.data);
  $("alerts-card").dataset.loaded = "true";
}

async function acknowledge(seq, button) {
  button.disabled = true;
  const r = await api(`/alerts/${seq}/acknowledge`, { method: "POST", csrf: me.csrf_token });
  if (!r.ok) {
    button.disabled = false;
    return;
  }
  onAcknowledged(r.data);
}

function onAcknowledged(alert) {
  const item = alertItems.get(alert.seq);
  if (!item) return;
  item.alert = { ...item.alert, ...alert };
  renderAck(item, item.alert);
  item.hidden = !shownByFilter(item.alert);
}

function addAlert(msg) {
  if (alertItems.has(msg.seq)) return;
  const alert = {
    seq: msg.seq,
    at: msg.at,
    kind: (msg.data && msg.data.reason) || "rule",
    text: msg.data.text,
    acknowledged_by: null,
    acknowledged_at: null,
  };
  const item = alertItem(alert);
  alertItems.set(alert.seq, item);
  const list = $("alerts");
  list.prepend(item);
  while (list.children.length > MAX_ALERTS) {
    alertItems.delete(Number(list.lastElementChild.dataset.seq));
    list.lastElementChild.remove();
  }
  if (!item.hidden) $("no-alerts").hidden = true;
}

function blockStatus(text, isError = false) {
  const line = $("block-status");
  line.classList.toggle("error", isError);
  line.textContent = text;
}

function row(entry) {
  const tr = document.createElement("tr");
  tr.dataset.number = entry.number;
  const cells = [
    entry.number,
    String(entry.strikes),
    entry.blocked ? new Date(entry.blocked_until).toLocaleString([], { hour12: false }) : t("not blocked"),
    `${entry.calls_total} (${entry.distinct_days})`,
    entry.updated_by,
  ];
  cells.forEach((text, index) => {
    const cell = document.createElement(index === 0 ? "th" : "td");
    if (index === 0) cell.scope = "row";
    cell.textContent = text;
    tr.append(cell);
  });
  const action = document.createElement("td");
  const button = document.createElement("button");
  button.type = "button";
  button.className = "secondary small";
  button.textContent = entry.blocked ? t("Unblock") : t("Clear strikes");
  button.addEventListener("click", () => unblock(entry.number));
  action.append(button);
  tr.append(action);
  return tr;
}

async function refresh() {
  if (!me || !me.campaign_id) return;
  const r = await api(`/campaigns/${me.campaign_id}/blocklist`);
  if (!r.ok) {
    blockStatus((r.data && r.data.message) || t("The blocklist could not be read."), true);
    return;
  }
  $("blocklist").replaceChildren(...r.data.map(row));
  $("no-blocks").hidden = r.data.length > 0;
  $("blocklist-table").hidden = r.data.length === 0;
}

async function unblock(number) {
  const r = await api(`/campaigns/${me.campaign_id}/blocklist/${encodeURIComponent(number)}`, {
    method: "DELETE",
    csrf: me.csrf_token,
  });
  const refused = (r.data && r.data.message) || t("Refused.");
  blockStatus(r.ok ? t("{number} can call again.", { number }) : refused, !r.ok);
  await refresh();
}

$("block-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const number = $("block-number").value.trim();
  if (!number) {
    blockStatus(t("Type the number to block."), true);
    $("block-number").focus();
    return;
  }
  const r = await api(`/campaigns/${me.campaign_id}/blocklist`, {
    method: "POST",
    csrf: me.csrf_token,
    body: { number, duration: $("block-duration").value },
  });
  if (r.ok) {
    $("block-number").value = "";
    blockStatus(t("{number} is blocked.", { number: r.data.number }));
  } else {
    blockStatus((r.data && r.data.message) || t("Refused."), true);
  }
  await refresh();
});

document.addEventListener("pledgeline:message", (event) => {
  const msg = event.detail;
  if (msg.type === "supervisor.alert") addAlert(msg);
  else if (msg.type === "supervisor.alert_acknowledged") {
    onAcknowledged({ seq: msg.data.seq, acknowledged_by: msg.data.by, acknowledged_at: msg.data.at });
  }
  else if (msg.type.startsWith("number.")) refresh();
});

async function main() {
  me = await whoAmI().catch(() => null);
  if (!me || !me.campaign_id) {
    // An admin without a campaign: nothing to list here.
    $("blocklist-card").hidden = true;
    return;
  }
  $("alert-kind").addEventListener("change", loadAlerts);
  $("alert-open").addEventListener("change", loadAlerts);
  await Promise.all([refresh(), loadAlerts()]);
}

main();
