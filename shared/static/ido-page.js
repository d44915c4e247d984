// What the staff pages (the desk on intake, the inbox on routing) share: the credential in this
// tab's sessionStorage (its key named after the page), building elements, Dutch labels, the BSN
// check (the same rule as shared/privacy.py) and calling the API with the credential. Loaded
// before the page's own script; both are classic scripts sharing these globals.
"use strict";

const PAGE = location.pathname.split("/")[1]; // "desk" or "inbox": also the id of its main part
const CREDENTIAL = `ido-${PAGE}-credential`;
const LABELS = JSON.parse(document.body.dataset.labels || "{}");

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function label(kind, code) {
  return (LABELS[kind] || {})[code] || code;
}

function humanize(slug) {
  const text = slug.replace(/-/g, " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function credential() {
  return sessionStorage.getItem(CREDENTIAL);
}

function status(text) {
  $("page-status").textContent = text;
}

const BSN_CANDIDATE = /(?<!\d)(?=(\d(?:[ .-]?\d){8}(?!\d)))/g;

function passesElfproef(digits) {
  if (digits.length !== 9 || digits === "000000000") return false;
  let total = 0;
  for (let i = 0; i < 8; i++) total += Number(digits[i]) * (9 - i);
  return (total - Number(digits[8])) % 11 === 0;
}

function containsBsn(text) {
  for (const match of text.matchAll(BSN_CANDIDATE)) {
    if (passesElfproef(match[1].replace(/\D/g, ""))) return true;
  }
  return false;
}

class SignedOut extends Error {}

async function api(method, url, body, headers = {}) {
  const token = credential();
  if (!token) throw new SignedOut();
  const init = { method, headers: { Authorization: `Bearer ${token}`, ...headers }, cache: "no-store" };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const answer = await fetch(url, init);
  const text = await answer.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (answer.status === 401) {
    signOut("Uw sleutel wordt niet (meer) geaccepteerd. Meld u opnieuw aan.");
    throw new SignedOut();
  }
  return { status: answer.status, ok: answer.ok, data };
}

function problemText(answer) {
  if (answer.status === 429 || answer.status === 503) return "De dienst is even niet beschikbaar. Probeer het zo opnieuw.";
  if (answer.status === 403) return "Deze sleutel mag dit niet.";
  return (answer.data && (answer.data.detail || answer.data.title)) || `Onverwacht antwoord (${answer.status}).`;
}

function claims(token) {
  try {
    return JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
  } catch {
    return {};
  }
}

// -- signing in and out: the page signs in its own way (signIn) and clears its own state
// (clearPage); the form, the button, the credential and what is shown are the same ---------

let clearPage = () => {};

function signOut(message) {
  sessionStorage.removeItem(CREDENTIAL);
  clearPage();
  $("session").hidden = true;
  $(PAGE).hidden = true;
  $("sign-in-section").hidden = false;
  status(message || "U bent afgemeld.");
  $("credential").focus();
}

function wireSignIn(signIn, whose) {
  $("sign-in").addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = $("credential").value.trim();
    if (!token) {
      status(`Plak eerst de sleutel van ${whose}.`);
      $("credential").focus();
      return;
    }
    await signIn(token, { announce: true });
  });
  $("sign-out").addEventListener("click", () => signOut());
  if (credential()) signIn(credential(), { announce: false });
  else $("sign-in-section").hidden = false;
}
