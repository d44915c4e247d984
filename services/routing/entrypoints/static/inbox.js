// The inbox of an agency or a local partner: its referrals, late and newest first, the handover
// of one (every read is recorded) and a status report. No framework, no build. The credential
// lives in this tab's sessionStorage; the visitor's details are shown, never stored.
"use strict";

const OPEN = ["sent", "accepted", "needs_client_action"];
const PREFERENCE = { phone: "Telefoon", email: "E-mail", do_not_contact: "Geen contact gewenst" };

let items = [];
let next = null;
let opened = null; // the referral shown, with its handover
let opener = null; // the button that opened it, to return focus to

function themeOf(r) {
  return r.subtheme ? `${label("themes", r.theme)} – ${humanize(r.subtheme)}` : label("themes", r.theme);
}

function when(iso) {
  return new Date(iso).toLocaleString("nl-NL", { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
}

// -- sign in and out -------------------------------------------------------------------------
async function signIn(token, { announce }) {
  sessionStorage.setItem(CREDENTIAL, token);
  let answer;
  try {
    answer = await api("GET", "/v1/referrals?limit=1");
  } catch (error) {
    if (!(error instanceof SignedOut)) signOut("De dienst is niet bereikbaar. Probeer het zo opnieuw.");
    return;
  }
  if (answer.status === 403) return signOut("Deze sleutel is niet van een organisatie die doorverwijzingen ontvangt.");
  if (!answer.ok) return signOut(problemText(answer));
  const organisation = claims(token).org || "";
  $("signed-in-as").textContent = `Aangemeld: ${label("organisations", organisation)}`;
  $("session").hidden = false;
  $("sign-in-section").hidden = true;
  $("inbox").hidden = false;
  $("credential").value = "";
  status("");
  await load();
  if (announce) {
    $("list-title").setAttribute("tabindex", "-1");
    $("list-title").focus();
  }
}

clearPage = () => {
  closeHandover(false);
  items = [];
  next = null;
  $("referrals").tBodies[0].replaceChildren();
};

// -- the list: late first (earliest deadline first), then the newest ---------------------------

function query(after) {
  const params = new URLSearchParams({ limit: "100" });
  if ($("which").value === "open") for (const s of OPEN) params.append("status", s);
  if (after) params.set("after", after);
  return `/v1/referrals?${params}`;
}

async function load(after = null) {
  let answer;
  try {
    answer = await api("GET", query(after));
  } catch {
    return;
  }
  if (!answer.ok) {
    $("list-status").textContent = `De doorverwijzingen konden niet worden geladen: ${problemText(answer)}`;
    return;
  }
  items = after ? [...items, ...answer.data.items] : answer.data.items;
  next = answer.data.next;
  render();
}

function ordered() {
  const late = items.filter((r) => r.overdue).sort((a, b) => a.due_at.localeCompare(b.due_at));
  const rest = items.filter((r) => !r.overdue).sort((a, b) => b.sent_at.localeCompare(a.sent_at));
  return [...late, ...rest];
}

function render() {
  const rows = ordered().map((r) => {
    const clock = r.due_at ? when(r.due_at) : "—";
    const badge = r.overdue
      ? el("span", { class: "badge late" }, "te laat")
      : r.paused
        ? el("span", { class: "badge ok" }, "klok gepauzeerd")
        : null;
    const open = el("button", { type: "button", class: "secondary", "data-open": r.referral_id, "aria-label": `Open ${themeOf(r)}, ontvangen ${when(r.sent_at)}` }, "Openen");
    open.addEventListener("click", () => openHandover(r.referral_id, open));
    return el(
      "tr",
      { class: r.overdue ? "late" : null, "data-referral": r.referral_id, "data-status": r.status },
      el("td", {}, `${clock} `, badge),
      el("td", {}, when(r.sent_at)),
      el("td", {}, themeOf(r)),
      el("td", {}, label("libraries", r.library)),
      el("td", {}, label("statuses", r.status)),
      el("td", {}, open),
    );
  });
  $("referrals").tBodies[0].replaceChildren(...rows);
  const late = items.filter((r) => r.overdue).length;
  $("list-status").textContent = items.length
    ? `${items.length} doorverwijzing${items.length === 1 ? "" : "en"}${late ? `, waarvan ${late} te laat` : ""}.`
    : "Geen doorverwijzingen.";
  $("more").hidden = !next;
}

$("filters").addEventListener("submit", (event) => {
  event.preventDefault();
  load();
});
$("which").addEventListener("change", () => load());
$("more").addEventListener("click", () => load(next));

// -- the handover of one referral and the status report ---------------------------------------

async function openHandover(id, button) {
  let answer;
  try {
    answer = await api("GET", `/v1/referrals/${encodeURIComponent(id)}`);
  } catch {
    return;
  }
  if (!answer.ok) {
    status(`De overdracht kon niet worden geopend: ${problemText(answer)}`);
    return;
  }
  opened = answer.data;
  opener = button;
  showHandover();
  $("handover-section").hidden = false;
  $("handover-title").focus();
}

function showHandover() {
  const r = opened;
  const contact = r.contact || {};
  const rows = [
    ["Thema", themeOf(r)],
    ["Bibliotheek", label("libraries", r.library)],
    ["Ontvangen", when(r.sent_at)],
    ["Reageren vóór", r.due_at ? when(r.due_at) : "— (afgerond of gepauzeerd)"],
    ["Status", label("statuses", r.status)],
    ["Contact gewenst via", PREFERENCE[r.contact_preference] || "—"],
    ["Naam", contact.name || "—"],
    ["Telefoon", contact.phone || "—"],
    ["E-mail", contact.email || "—"],
    ["Notitie van de bibliotheek", r.note || "—"],
  ];
  $("handover").replaceChildren(...rows.flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]));
  $("history").replaceChildren(
    el("li", {}, `${when(r.sent_at)}: ${label("statuses", "sent")}`),
    ...r.history.map((h) => el("li", {}, `${when(h.at)}: ${label("statuses", h.status)}${h.reason ? ` (${h.reason})` : ""}`)),
  );
  const choices = r.allowed_statuses.map((s) =>
    el(
      "div",
      { class: "choice" },
      el("input", { type: "radio", name: "status", id: `status-${s}`, value: s }),
      el("label", { for: `status-${s}` }, label("statuses", s)),
    ),
  );
  $("status-choices").replaceChildren(...(choices.length ? choices : [el("p", {}, "Deze doorverwijzing is afgerond.")]));
  $("save-status").disabled = !choices.length;
  $("reason").value = "";
  hideStatusErrors();
}

function closeHandover(returnFocus = true) {
  opened = null;
  $("handover").replaceChildren(); // the visitor's details leave the page
  $("history").replaceChildren();
  $("status-choices").replaceChildren();
  $("reason").value = "";
  $("handover-section").hidden = true;
  if (returnFocus && opener && opener.isConnected) opener.focus();
}

$("close").addEventListener("click", () => closeHandover());

function hideStatusErrors() {
  $("status-error").hidden = true;
  $("status-error-list").replaceChildren();
  $("reason").removeAttribute("aria-invalid");
}

function showStatusError(id, message) {
  const link = id ? el("a", { href: `#${id}` }, message) : el("span", { text: message });
  if (id) {
    link.addEventListener("click", (event) => {
      event.preventDefault();
      $(id).focus();
    });
    if (id === "reason") $("reason").setAttribute("aria-invalid", "true");
  }
  $("status-error-list").replaceChildren(el("li", {}, link));
  $("status-error").hidden = false;
  $("status-error").focus();
}

$("report").addEventListener("submit", async (event) => {
  event.preventDefault();
  const chosen = $("report").querySelector('input[name="status"]:checked');
  const first = $("status-choices").querySelector("input");
  if (!chosen) return showStatusError(first ? first.id : null, "Kies de nieuwe status.");
  const reason = $("reason").value.trim();
  if (containsBsn(reason)) return showStatusError("reason", "De toelichting lijkt een BSN te bevatten. Het IDO mag geen BSN vastleggen: haal het nummer weg.");
  let answer;
  try {
    answer = await api("POST", `/v1/referrals/${encodeURIComponent(opened.referral_id)}/status`, {
      status: chosen.value,
      ...(reason ? { reason } : {}),
    });
  } catch {
    return;
  }
  if (answer.status === 409) {
    showStatusError(null, "Deze statuswijziging is niet (meer) toegestaan; de lijst is bijgewerkt.");
    load();
    return;
  }
  if (!answer.ok) {
    const params = (answer.data && answer.data["invalid-params"]) || [];
    const aboutReason = params.some((p) => p.name === "reason");
    return showStatusError(aboutReason ? "reason" : null, aboutReason ? "De toelichting is te lang (hoogstens 500 tekens) of bevat een BSN." : problemText(answer));
  }
  // The answer holds no personal data: keep what the handover showed, take the new state.
  opened = { ...opened, ...answer.data, contact: opened.contact, note: opened.note };
  showHandover();
  status(`Status opgeslagen: ${label("statuses", answer.data.status)}.`);
  await load();
  $("handover-title").focus();
});

// -- start ------------------------------------------------------------------------------------

wireSignIn(signIn, "uw organisatie");
