// The public tote board (/board?campaign=N): big running totals for a studio
// screen. No login and no personal data: it reads the public /board/totals once a
// second (the figures move within a second of a pledge being saved).

import { formatDecimal, formatMoney, loadCatalogue, t } from "/static/i18n.js";

const params = new URLSearchParams(location.search);
const campaign = params.get("campaign") || params.get("campaign_id");
const POLL_MS = 1000;
const $ = (id) => document.getElementById(id);

function money(minor, currency) {
  if (minor === null || minor === undefined) return "–";
  // Whole units on a studio screen: "12 346 €".
  return formatMoney(minor, currency, 0);
}

let lastTotal = null;

function show(data) {
  $("board-campaign").textContent = data.campaign;
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
  $("board-count").textContent = formatDecimal(data.count, 0);
  $("board-count").dataset.count = String(data.count);
  $("board-average").textContent = money(data.average_minor, data.currency);
  $("board-paid").textContent = money(data.paid_minor, data.currency);
  $("board-last").textContent = money(data.last_pledge_minor, data.currency);
  $("board-status").textContent = "";
}

async function poll() {
  const query = campaign ? `?campaign_id=${encodeURIComponent(campaign)}` : "";
  try {
    const response = await fetch(`/board/totals${query}`, { cache: "no-store" });
    const data = await response.json();
    if (response.ok) show(data);
    else $("board-status").textContent = data.message || t("No figures yet.");
  } catch {
    $("board-status").textContent = t("Reconnecting…");
  }
  setTimeout(poll, POLL_MS);
}

// The catalogue first (the status lines are in the page's language); the figures
// come anyway if it cannot be had.
await loadCatalogue().catch(() => {});
poll();
