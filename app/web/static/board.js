// The public tote board (/board?campaign=N, and its compact /board/embed): the
// running totals, the goal's thermometer and the first names and towns of the
// latest donors who agreed to be named on air. No login. The figures are pushed:
// an EventSource on /board/stream, whose first message is the current figures (so
// a board that reconnects shows the figure of that moment), then at most one a
// second while pledges come in.

import { formatDecimal, formatMoney, loadCatalogue, t } from "/static/i18n.js";

const params = new URLSearchParams(location.search);
const campaign = params.get("campaign") || params.get("campaign_id");
// After the server refused (an unknown campaign, say): try again this much later.
const RETRY_MS = 5000;
const $ = (id) => document.getElementById(id);

function money(minor, currency) {
  if (minor === null || minor === undefined) return "–";
  // Whole units on a studio screen: "12 346 €".
  return formatMoney(minor, currency, 0);
}

function setText(id, text) {
  const node = $(id);
  if (node) node.textContent = text;
}

let lastTotal = null;

function showGoal(data) {
  const goal = $("board-goal");
  if (!goal) return;
  goal.hidden = !data.goal_minor;
  if (!data.goal_minor) return;
  const share = Math.min(1, data.promised_minor / data.goal_minor);
  const percent = Math.floor((data.promised_minor * 100) / data.goal_minor);
  const bar = $("board-goal-bar");
  bar.setAttribute("aria-valuenow", String(Math.min(100, percent)));
  bar.setAttribute("aria-valuetext", t("{percent} % of the goal", { percent: formatDecimal(percent, 0) }));
  $("board-goal-fill").style.width = `${(share * 100).toFixed(2)}%`;
  setText("board-goal-amount", money(data.goal_minor, data.currency));
  setText("board-goal-percent", `${formatDecimal(percent, 0)} %`);
  goal.dataset.percent = String(percent);
}

function showNames(latest) {
  const list = $("board-names");
  if (!list) return;
  const items = latest.map((donor) => {
    const item = document.createElement("li");
    item.className = "board-name";
    // textContent only: a donor's name is never markup.
    item.textContent = donor.city
      ? t("{first_name} from {city}", { first_name: donor.first_name, city: donor.city })
      : donor.first_name;
    return item;
  });
  list.replaceChildren(...items);
  $("board-thanks").hidden = items.length === 0;
}

function show(data) {
  setText("board-campaign", data.campaign);
  document.title = t("{campaign} — tote board", { campaign: data.campaign });
  const total = $("board-total");
  total.textContent = money(data.promised_minor, data.currency);
  total.dataset.minor = String(data.promised_minor);
  if (lastTotal !== null && data.promised_minor > lastTotal) {
    total.classList.remove("board-bump");
    void total.offsetWidth; // restart the animation
    total.classList.add("board-bump");
  }
  lastTotal = data.promised_minor;
  const count = $("board-count");
  count.textContent = formatDecimal(data.count, 0);
  count.dataset.count = String(data.count);
  setText("board-average", money(data.average_minor, data.currency));
  setText("board-paid", money(data.paid_minor, data.currency));
  setText("board-last", money(data.last_pledge_minor, data.currency));
  showGoal(data);
  showNames(data.latest || []);
  setText("board-status", "");
  document.body.dataset.live = "true";
}

function connect() {
  const query = campaign ? `?campaign_id=${encodeURIComponent(campaign)}` : "";
  const source = new EventSource(`/board/stream${query}`);
  source.addEventListener("totals.updated", (event) => show(JSON.parse(event.data)));
  source.onerror = () => {
    document.body.dataset.live = "false";
    if (source.readyState === EventSource.CLOSED) {
      // Refused (not a stream): EventSource gives up; we do not.
      setText("board-status", t("No figures yet."));
      setTimeout(connect, RETRY_MS);
    } else {
      // It reconnects by itself; the first message will be the figures of then.
      setText("board-status", t("Reconnecting…"));
    }
  };
}

// The catalogue first (the status lines are in the page's language); the figures
// come anyway if it cannot be had.
await loadCatalogue().catch(() => {});
connect();
