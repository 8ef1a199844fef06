// The sign-in page: POST /auth/login (cookie mode), then on to the page of the role.

import { api, pageForRole, signOut, whoAmI } from "/static/common.js";
import { loadCatalogue, t } from "/static/i18n.js";

const params = new URLSearchParams(location.search);
const form = document.getElementById("login-form");
const username = document.getElementById("username");
const secret = document.getElementById("secret");
const campaign = document.getElementById("campaign");
const error = document.getElementById("login-error");
const button = document.getElementById("login-btn");

/** Only a path of this site: never an open redirect. */
function nextPage(role) {
  const next = params.get("next");
  const own = pageForRole(role);
  if (!next || !next.startsWith("/") || next.startsWith("//") || next.startsWith("/\\")) return own;
  const path = next.split("?")[0];
  // A volunteer sent to /supervisor (or the reverse) goes to their own page instead.
  if ((path === "/agent" || path === "/supervisor") && path !== own) return own;
  if (path.startsWith("/login")) return own;
  return next;
}

function fail(message, field) {
  error.textContent = message;
  for (const input of [username, secret, campaign]) input.removeAttribute("aria-invalid");
  if (field) {
    field.setAttribute("aria-invalid", "true");
    field.focus();
  }
}

async function showSignedIn() {
  let me = null;
  try {
    me = await whoAmI();
  } catch {
    return;
  }
  if (!me) return;
  const box = document.getElementById("signed-in");
  document.getElementById("signed-in-text").textContent =
    t("Signed in as {username} ({role}).", { username: me.username, role: me.role });
  document.getElementById("continue-link").href = nextPage(me.role);
  document.getElementById("switch-btn").addEventListener("click", () => signOut(me.csrf_token));
  box.hidden = false;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = username.value.trim();
  if (!name) return fail(t("Enter your name."), username);
  if (!secret.value) return fail(t("Enter your PIN or password."), secret);
  const body = { username: name, secret: secret.value, mode: "cookie" };
  if (campaign.value.trim()) {
    const id = Number(campaign.value);
    if (!Number.isInteger(id) || id < 1) return fail(t("The campaign number is a whole number."), campaign);
    body.campaign_id = id;
  }
  button.disabled = true;
  error.textContent = "";
  try {
    const r = await api("/auth/login", { method: "POST", body });
    if (r.ok) {
      location.assign(nextPage(r.data.role));
      return;
    }
    if (r.status === 401) {
      fail(t("Wrong name, PIN or password — or, for volunteers, the wrong campaign number."), secret);
    } else if (r.status === 422 && r.data && r.data.field === "campaign_id") {
      // A missing or unknown campaign number: said as such, not counted as a failure.
      fail(r.data.message, campaign);
    } else if (r.status === 429) {
      fail(t("Too many attempts. Wait a few minutes, then try again."), null);
    } else {
      fail((r.data && r.data.message) || t("Sign-in failed ({status}).", { status: r.status }), null);
    }
  } catch {
    fail(t("The server cannot be reached. Check the connection and try again."), null);
  } finally {
    button.disabled = false;
  }
});

// The catalogue first: the messages above are written in the page's language.
await loadCatalogue().catch(() => {});
if (params.get("campaign")) campaign.value = params.get("campaign");
if (params.get("username")) username.value = params.get("username");
showSignedIn();
username.focus();
