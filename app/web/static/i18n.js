// The pages' translations and formats: the catalogue of /i18n/{language}
// (app/i18n/endpoints.py), the language being <html lang>, which the server sets
// from the user's setting or Accept-Language. Numbers and dates are formatted with
// the same CLDR patterns and symbols as the server's Babel, so a page and an
// export or receipt show "1 234,50 €", "53,2 %" and "06/12/2026 21:05" alike.
//
//   import { loadCatalogue, t, formatMoney } from "/static/i18n.js";
//   await loadCatalogue();
//   t("campaign {campaign_id} not found", { campaign_id: 3 });
//   formatMoney(123450, "EUR");

const state = { language: "fr", messages: {}, formats: null };

let loading = null; // the catalogue's fetch, shared by every script of the page

export function loadCatalogue(language = document.documentElement.lang || "fr") {
  if (loading && loading.language === language) return loading.promise;
  const promise = fetch(`/i18n/${encodeURIComponent(language)}`).then(async (response) => {
    if (!response.ok) throw new Error(`no catalogue for ${language}: ${response.status}`);
    const body = await response.json();
    state.language = body.language;
    state.messages = body.messages;
    state.formats = body.formats;
    return body;
  });
  loading = { language, promise };
  promise.catch(() => {
    if (loading && loading.promise === promise) loading = null; // a later call tries again
  });
  return promise;
}

export function language() {
  return state.language;
}

// Marks a message id for the catalogue where it is written before it is shown
// (a table of labels): the id as it is; t() translates it where it is shown.
export function N_(id) {
  return id;
}

// A message id (the English text) in the page's language, its {placeholders}
// filled from params; an id the catalogue lacks reads as itself.
export function t(id, params = {}) {
  const text = Object.prototype.hasOwnProperty.call(state.messages, id) ? state.messages[id] : id;
  return text.replace(/\{(\w+)(![rsa])?\}/g, (whole, name) =>
    Object.prototype.hasOwnProperty.call(params, name) ? String(params[name]) : whole,
  );
}

const TRANSLATED_ATTRIBUTES = ["title", "placeholder", "aria-label", "alt"];
const HAS_LETTER = /\p{L}/u;

function translatedText(raw) {
  const id = raw.split(/\s+/).filter(Boolean).join(" ");
  if (!HAS_LETTER.test(id) || !Object.prototype.hasOwnProperty.call(state.messages, id)) return null;
  return state.messages[id];
}

// Markup a script writes itself (marked /* html */ for the catalogue) translated by
// the rules the server applies to the pages (app/i18n/html.py): each text and each
// title, placeholder, aria-label and alt is an id, whitespace folded; what an
// element marked translate="no" holds, scripts and styles are left alone.
export function translateTree(root) {
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_ELEMENT | NodeFilter.SHOW_TEXT, {
    acceptNode(node) {
      if (node.nodeType !== Node.ELEMENT_NODE) return NodeFilter.FILTER_ACCEPT;
      const tag = node.localName;
      if (node.getAttribute("translate") === "no" || tag === "script" || tag === "style") {
        return NodeFilter.FILTER_REJECT;
      }
      return NodeFilter.FILTER_ACCEPT;
    },
  });
  for (let node = walker.currentNode; node; node = walker.nextNode()) {
    if (node.nodeType === Node.TEXT_NODE) {
      const text = translatedText(node.data);
      if (text !== null) {
        const lead = node.data.match(/^\s*/)[0];
        const trail = node.data.match(/\s*$/)[0];
        node.data = lead + text + trail;
      }
    } else if (node.nodeType === Node.ELEMENT_NODE) {
      for (const name of TRANSLATED_ATTRIBUTES) {
        const value = node.getAttribute(name);
        const text = value === null ? null : translatedText(value);
        if (text !== null) node.setAttribute(name, text);
      }
    }
  }
  return root;
}

function formats() {
  if (!state.formats) throw new Error("loadCatalogue() first");
  return state.formats;
}

// Digits with the language's group and decimal symbols (groups of three, as in
// fr and en), between minPlaces and maxPlaces decimals.
function digits(value, minPlaces, maxPlaces) {
  const f = formats();
  const fixed = Math.abs(value).toFixed(maxPlaces);
  let [whole, fraction = ""] = fixed.split(".");
  while (fraction.length > minPlaces && fraction.endsWith("0")) fraction = fraction.slice(0, -1);
  whole = whole.replace(/\B(?=(\d{3})+(?!\d))/g, f.group);
  const sign = value < 0 ? "-" : "";
  return sign + whole + (fraction ? f.decimal + fraction : "");
}

// A CLDR number pattern ("#,##0.00 ¤") with its number part replaced.
function applyPattern(pattern, number, symbol = "") {
  return pattern.replace(/[#0,.]+/, number).replace("¤", symbol).replace("%", formats().percent_sign);
}

export function formatDecimal(value, maxPlaces = 3) {
  return digits(value, 0, maxPlaces);
}

// An amount in minor units (cents): 123450 EUR is "1 234,50 €" in French; with
// shownPlaces 0, "1 235 €" (a studio board's whole units).
export function formatMoney(minor, currency, shownPlaces = undefined) {
  const f = formats();
  const known = f.currencies[currency];
  const places = known ? known.places : 2;
  const symbol = known ? known.symbol : currency;
  const shown = shownPlaces === undefined ? places : shownPlaces;
  const number = digits(minor / 10 ** places, shown, shown);
  return applyPattern(f.currency_pattern, number, symbol);
}

// An amount typed by a person ("25", "25,50", "1 234,50 €", "25.50") in the currency's
// minor units, or null when it is not one.
export function parseAmount(text, currency = "EUR") {
  const known = state.formats && state.formats.currencies[currency];
  const places = known ? known.places : 2;
  const cleaned = String(text).replace(/[\s\u00a0\u202f€$£]/g, "").replace(",", ".");
  const pattern = places > 0 ? new RegExp(`^\\d+(\\.\\d{1,${places}})?$`) : /^\d+$/;
  if (!pattern.test(cleaned)) return null;
  const [whole, fraction = ""] = cleaned.split(".");
  return Number(whole) * 10 ** places + Number(fraction.padEnd(places, "0") || 0);
}

// A ratio: 0.532 is "53,2 %" (at most one decimal, like the server).
export function formatPercent(ratio, places = 1) {
  const number = digits(Math.round(ratio * 100 * 10 ** places) / 10 ** places, 0, places);
  return applyPattern(formats().percent_pattern, number);
}

// A moment (Date or ISO 8601 text) on the campaign's clock: "06/12/2026 21:05".
export function formatDateTime(moment, timeZone = formats().timezone) {
  const f = formats();
  const date = moment instanceof Date ? moment : new Date(moment);
  const parts = {};
  const clock = new Intl.DateTimeFormat("en-GB", {
    timeZone, year: "numeric", month: "numeric", day: "numeric",
    hour: "numeric", minute: "numeric", hourCycle: "h23",
  });
  for (const part of clock.formatToParts(date)) parts[part.type] = part.value;
  const fields = {
    y: parts.year, yy: parts.year.slice(-2), M: String(Number(parts.month)),
    MM: parts.month.padStart(2, "0"), d: String(Number(parts.day)), dd: parts.day.padStart(2, "0"),
    H: String(Number(parts.hour)), HH: parts.hour.padStart(2, "0"), mm: parts.minute.padStart(2, "0"),
  };
  const fill = (pattern) => pattern.replace(/yy|y|MM|M|dd|d|HH|H|mm/g, (token) => fields[token]);
  return f.datetime_pattern.replace("{1}", fill(f.date_pattern)).replace("{0}", fill(f.time_pattern));
}
