// The supervisor page's rules panels: alerts raised by the campaign's rules
// (`supervisor.alert`), and the blocklist (numbers with prank strikes or a block),
// kept through the REST API (GET/POST/DELETE /campaigns/{id}/blocklist).

import { api, whoAmI } from "/static/common.js";
import { t } from "/static/i18n.js";

const $ = (id) => document.getElementById(id);
const MAX_ALERTS = 30;

let me = null;

function clockText(iso) {
  return new Date(iso).toLocaleTimeString([], { hour12: false });
}

function addAlert(msg) {
  const item = document.createElement("li");
  const time = document.createElement("time");
  time.dateTime = msg.at;
  time.textContent = clockText(msg.at);
  item.append(time, document.createTextNode(msg.data.text));
  item.dataset.rule = msg.data.rule || "";
  const list = $("alerts");
  list.prepend(item);
  while (list.children.length > MAX_ALERTS) list.lastElementChild.remove();
  $("no-alerts").hidden = true;
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
  else if (msg.type.startsWith("number.")) refresh();
});

async function main() {
  me = await whoAmI().catch(() => null);
  if (!me || !me.campaign_id) {
    // An admin without a campaign: nothing to list here.
    $("blocklist-card").hidden = true;
    return;
  }
  await refresh();
}

main();
