// The volunteer screen's page banner (surge mode, app/surge): when the line pages
// this volunteer (event `agent.paged`, or the snapshot's open pages), a clear
// banner asks them back, with an "I'm coming" button that answers the page over
// the socket (`answer_page`); the answer is recorded and shown to supervisors.

import { bus, screen } from "/static/agent-bus.js";
import { t } from "/static/i18n.js";

const $ = (id) => document.getElementById(id);
const shown = new Map(); // page id -> banner element

function show(page) {
  if (shown.has(page.page_id)) return;
  const banner = document.createElement("div");
  banner.className = "banner page";
  banner.setAttribute("role", "alert");
  banner.dataset.pageId = String(page.page_id);
  const text = document.createElement("p");
  text.textContent = page.message || t("Appeal on air: calls waiting, please come back");
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = t("I'm coming");
  const note = document.createElement("span");
  note.className = "page-note";
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await screen.command("answer_page", { page_id: page.page_id });
      text.textContent = t("Thank you! The supervisors know you are on your way.");
      button.remove();
      setTimeout(() => {
        banner.remove();
        shown.delete(page.page_id);
      }, 5000);
    } catch (err) {
      note.textContent = (err && err.message) || t("Not sent; try again.");
      button.disabled = false;
    }
  });
  banner.append(text, button, note);
  $("pages").append(banner);
  shown.set(page.page_id, banner);
}

function answered(pageId) {
  const banner = shown.get(pageId);
  if (banner) {
    banner.remove();
    shown.delete(pageId);
  }
}

bus.addEventListener("message", (event) => {
  const msg = event.detail;
  const d = msg.data || {};
  if (msg.type === "snapshot") (d.pages || []).forEach(show);
  else if (msg.type === "agent.paged") show(d);
  else if (msg.type === "agent.page_answered") {
    // Answered here or on another screen of the same volunteer.
    const banner = shown.get(d.page_id);
    if (banner && banner.querySelector("button")) answered(d.page_id);
  }
});
