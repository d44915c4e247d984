// The IDO desk: library staff register a visit by keyboard, then follow its outcome.
// No framework, no build. Nothing personal is stored in the browser: the credential lives in
// this tab's sessionStorage (it is not personal data of a visitor), the form is cleared after
// saving, and the visitor's contact details stay in memory only while the outcome is shown.
"use strict";

const COURSES = document.body.dataset.coursesUrl;
const FINISHED = new Set(["routed", "referred", "closed"]);
const VISIT_STATUS = { received: "Ontvangen", routed: "Afgehandeld", referred: "Doorverwezen", closed: "Afgesloten" };
const MAX_QUESTIONS = 10;

let themes = []; // [{category, theme, subtheme, label, search}]
let chosen = []; // the questions picked, in order
let active = -1; // the highlighted option
let idempotencyKey = crypto.randomUUID();
let lastVisit = null; // {id, contact}: in memory only, for the outcome and a course enrolment
let pollTimer = null;
let listTimer = null;

// -- small helpers ---------------------------------------------------------------------------

function fold(text) {
  return text.normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase();
}

function time(iso) {
  return new Date(iso).toLocaleTimeString("nl-NL", { hour: "2-digit", minute: "2-digit" });
}

function day(iso) {
  return new Date(iso).toLocaleString("nl-NL", { weekday: "long", day: "numeric", month: "long", hour: "2-digit", minute: "2-digit" });
}

// -- sign in and out -------------------------------------------------------------------------
async function signIn(token, { announce }) {
  sessionStorage.setItem(CREDENTIAL, token);
  let answer;
  try {
    answer = await api("GET", "/v1/locations");
  } catch (error) {
    if (!(error instanceof SignedOut)) signOut("De balie is niet bereikbaar. Probeer het zo opnieuw.");
    return false;
  }
  if (answer.status === 403) {
    signOut("Deze sleutel is niet van een bibliotheek. Gebruik de sleutel van uw bibliotheek.");
    return false;
  }
  if (!answer.ok) {
    signOut(problemText(answer));
    return false;
  }
  fillLocations(answer.data);
  const organisation = claims(token).org || "";
  $("signed-in-as").textContent = `Aangemeld: ${organisation}`;
  $("session").hidden = false;
  $("sign-in-section").hidden = true;
  $("desk").hidden = false;
  $("credential").value = "";
  status("");
  await loadThemes();
  refreshToday();
  listTimer = setInterval(() => document.visibilityState === "visible" && refreshToday(), 15000);
  api("GET", "/v1/libraries")
    .then((libraries) => {
      const mine = (libraries.data || []).find((l) => l.code === organisation);
      if (mine) $("signed-in-as").textContent = `Aangemeld: ${mine.name}`;
    })
    .catch(() => {});
  if (announce) document.querySelector('input[name="channel"]:checked').focus();
  return true;
}

clearPage = () => {
  clearInterval(listTimer);
  clearTimeout(pollTimer);
  lastVisit = null;
  resetForm();
  $("outcome").replaceChildren();
  $("advice").replaceChildren();
  $("outcome-section").hidden = true;
  $("today").tBodies[0].replaceChildren();
};

// -- the question picker: a combobox over the theme taxonomy ------------------------------------

async function loadThemes() {
  const answer = await api("GET", "/v1/themes");
  if (!answer.ok) return status("De thema's konden niet worden geladen. Vernieuw de pagina.");
  themes = [];
  for (const theme of answer.data.filter((t) => !t.retired)) {
    const entry = (subtheme, text) => ({
      category: theme.category,
      theme: theme.code,
      subtheme,
      label: text,
      search: fold(`${text} ${theme.code} ${subtheme || ""}`),
    });
    themes.push(entry(null, theme.label));
    for (const sub of Object.keys(theme.subthemes)) themes.push(entry(sub, `${theme.label} – ${humanize(sub)}`));
  }
}

function matches(query) {
  const words = fold(query).split(/\s+/).filter(Boolean);
  if (!words.length) return [];
  const found = themes.filter((t) => words.every((w) => t.search.includes(w)));
  // A subtheme whose own name starts with the query first, then the rest in taxonomy order.
  const first = (t) => (t.subtheme && fold(t.subtheme).startsWith(words[0]) ? 0 : 1);
  return found.sort((a, b) => first(a) - first(b)).slice(0, 12);
}

function renderOptions() {
  const input = $("theme-search");
  const list = $("theme-options");
  const found = matches(input.value);
  list.replaceChildren(
    ...found.map((t, i) =>
      el("li", { role: "option", id: `option-${i}`, "aria-selected": i === active ? "true" : "false", "data-index": i }, t.label),
    ),
  );
  list.hidden = !found.length;
  input.setAttribute("aria-expanded", found.length ? "true" : "false");
  if (active >= 0 && found.length) input.setAttribute("aria-activedescendant", `option-${active}`);
  else input.removeAttribute("aria-activedescendant");
  return found;
}

function addQuestion(choice) {
  const announcer = $("theme-announcer");
  if (chosen.length >= MAX_QUESTIONS) {
    announcer.textContent = `Er kunnen hoogstens ${MAX_QUESTIONS} vragen bij één bezoek.`;
    return;
  }
  if (chosen.some((q) => q.theme === choice.theme && q.subtheme === choice.subtheme)) {
    announcer.textContent = `${choice.label} staat al bij de vragen.`;
    return;
  }
  chosen.push({ ...choice, note: "" });
  renderChosen();
  announcer.textContent = `Vraag ${chosen.length} toegevoegd: ${choice.label}.`;
}

function renderChosen() {
  // Keep what was typed in the notes.
  chosen.forEach((q, i) => {
    const note = $(`note-${i}`);
    if (note) q.note = note.value;
  });
  const items = chosen.map((q, i) => {
    const note = el("textarea", { id: `note-${i}`, rows: 2 });
    note.value = q.note;
    const remove = el("button", { type: "button", class: "link", id: `remove-${i}`, "aria-label": `Verwijder vraag ${i + 1}: ${q.label}` }, "Verwijderen");
    remove.addEventListener("click", () => {
      renderChosen(); // saves the notes first
      chosen.splice(i, 1);
      renderChosen();
      $("theme-announcer").textContent = `Vraag verwijderd: ${q.label}.`;
      $("theme-search").focus();
    });
    return el(
      "li",
      { id: `question-${i}` },
      el("div", { class: "question-head" }, el("span", { text: q.label }), remove),
      el("div", { class: "field" }, el("label", { for: `note-${i}` }, `Notitie bij vraag ${i + 1} (optioneel, geen BSN)`), note),
    );
  });
  $("chosen").replaceChildren(...items);
}

$("theme-search").addEventListener("input", () => {
  active = matches($("theme-search").value).length ? 0 : -1;
  renderOptions();
});

$("theme-search").addEventListener("keydown", (event) => {
  const found = matches($("theme-search").value);
  if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    if (!found.length) return;
    event.preventDefault();
    const step = event.key === "ArrowDown" ? 1 : -1;
    active = (active + step + found.length) % found.length;
    renderOptions();
    $(`option-${active}`).scrollIntoView({ block: "nearest" });
  } else if (event.key === "Enter") {
    event.preventDefault(); // Enter in the search adds a question; it never sends the form
    if (found.length) {
      addQuestion(found[Math.max(active, 0)]);
      $("theme-search").value = "";
      active = -1;
      renderOptions();
    }
  } else if (event.key === "Escape") {
    $("theme-search").value = "";
    active = -1;
    renderOptions();
  }
});

$("theme-search").addEventListener("blur", () => {
  // Let a click on an option land before the list closes.
  setTimeout(() => {
    if (document.activeElement !== $("theme-search")) {
      $("theme-options").hidden = true;
      $("theme-search").setAttribute("aria-expanded", "false");
    }
  }, 200);
});

$("theme-options").addEventListener("mousedown", (event) => {
  const option = event.target.closest('[role="option"]');
  if (!option) return;
  event.preventDefault();
  addQuestion(matches($("theme-search").value)[Number(option.dataset.index)]);
  $("theme-search").value = "";
  active = -1;
  renderOptions();
  $("theme-search").focus();
});

// -- consent reveals the contact fields -------------------------------------------------------

$("consent").addEventListener("change", () => {
  const consent = $("consent").checked;
  $("contact-fields").hidden = !consent;
  if (!consent) for (const id of ["contact-name", "contact-phone", "contact-email"]) $(id).value = "";
});

// -- errors: next to each field and in a summary at the top (NL Design System) -----------------

function fieldFor(name) {
  const question = /^questions\.(\d+)(?:\.(\w+))?/.exec(name);
  if (question) {
    const i = Number(question[1]);
    const q = chosen[i] ? chosen[i].label : `vraag ${i + 1}`;
    if (question[2] === "note") return [`note-${i}`, `De notitie bij vraag ${i + 1} (${q}) is te lang of bevat iets dat niet mag, zoals een BSN.`];
    if (question[2] === "theme" || question[2] === "subtheme") return [`remove-${i}`, `Vraag ${i + 1} (${q}) staat niet (meer) in de lijst met thema's. Verwijder haar en kies opnieuw.`];
    return ["theme-search", `Vraag ${i + 1} (${q}) is niet goed.`];
  }
  if (name === "questions") return ["theme-search", "Kies minstens één en hoogstens tien vragen."];
  if (name === "channel") return ["channel-walk_in", "Kies een kanaal."];
  if (name.startsWith("help_given")) return ["help-informed", "Kies de geboden hulp uit de lijst."];
  if (name === "duration_minutes") return ["duration", "Vul de duur in als een heel aantal minuten, van 1 tot en met 480."];
  if (name === "location") return ["location", "Kies een locatie van uw bibliotheek."];
  if (name === "referral.contact.name") return ["contact-name", "Vul een naam in van hoogstens 200 tekens."];
  if (name === "referral.contact.phone") return ["contact-phone", "Vul een geldig telefoonnummer in, bijvoorbeeld 0612345678."];
  if (name === "referral.contact.email") return ["contact-email", "Vul een geldig e-mailadres in, bijvoorbeeld naam@voorbeeld.nl."];
  if (name === "referral.contact_preference") return ["preference-phone", "Kies hoe de bezoeker benaderd wil worden."];
  if (name.startsWith("referral")) return ["consent", "Contactgegevens kunnen alleen mee met toestemming van de bezoeker."];
  return [null, null];
}

function clearErrors() {
  for (const message of document.querySelectorAll("#visit .error-message")) message.remove();
  for (const field of document.querySelectorAll("#visit [aria-invalid]")) {
    field.removeAttribute("aria-invalid");
    const describedBy = (field.getAttribute("aria-describedby") || "").split(" ").filter((id) => id && !id.endsWith("-error"));
    if (describedBy.length) field.setAttribute("aria-describedby", describedBy.join(" "));
    else field.removeAttribute("aria-describedby");
  }
  $("error-list").replaceChildren();
  $("error-summary").hidden = true;
}

function markField(id, message) {
  const field = $(id);
  if (!field) return;
  // A group (radios, checkboxes, the question picker) carries its message under its legend.
  const group = field.closest("fieldset.field");
  const inGroup = group && (field.type === "radio" || field.type === "checkbox" || id === "theme-search" || id.startsWith("remove-"));
  const errorId = `${id}-error`;
  if ($(errorId)) return;
  const message_ = el("p", { class: "error-message", id: errorId }, el("span", { class: "visually-hidden", text: "Fout: " }), message);
  if (inGroup) {
    const anchor = id.startsWith("remove-") ? field.closest("li").firstChild : group.querySelector("legend");
    anchor.after(message_);
  } else {
    field.before(message_);
  }
  field.setAttribute("aria-invalid", "true");
  field.setAttribute("aria-describedby", [field.getAttribute("aria-describedby"), errorId].filter(Boolean).join(" "));
}

function showErrors(errors) {
  clearErrors();
  const list = $("error-list");
  for (const { id, message } of errors) {
    if (id) markField(id, message);
    const link = id ? el("a", { href: `#${id}` }, message) : el("span", { text: message });
    if (id) {
      link.addEventListener("click", (event) => {
        event.preventDefault();
        $(id).focus();
      });
    }
    list.append(el("li", {}, link));
  }
  $("error-summary").hidden = false;
  $("error-summary").focus();
}

function apiErrors(answer) {
  const params = (answer.data && answer.data["invalid-params"]) || [];
  if (!params.length) return [{ id: null, message: problemText(answer) }];
  const seen = new Set();
  const errors = [];
  for (const param of params) {
    const [id, message] = fieldFor(param.name);
    const key = id || param.name;
    if (seen.has(key)) continue;
    seen.add(key);
    errors.push({ id, message: message || `${param.name}: ${param.reason}` });
  }
  return errors;
}

// -- registering a visit ----------------------------------------------------------------------

function collect() {
  renderChosen(); // the notes as typed
  const form = $("visit");
  const body = {
    channel: form.elements.channel.value,
    questions: chosen.map((q) => ({
      category: q.category,
      theme: q.theme,
      ...(q.subtheme ? { subtheme: q.subtheme } : {}),
      ...(q.note.trim() ? { note: q.note.trim() } : {}),
    })),
    help_given: [...form.querySelectorAll('input[name="help_given"]:checked')].map((c) => c.value),
  };
  const duration = $("duration").value.trim();
  if (duration) body.duration_minutes = /^\d+$/.test(duration) ? Number(duration) : duration;
  if ($("location").value) body.location = $("location").value;
  let contact = null;
  if ($("consent").checked) {
    contact = {};
    for (const [key, id] of [["name", "contact-name"], ["phone", "contact-phone"], ["email", "contact-email"]]) {
      const value = $(id).value.trim();
      if (value) contact[key] = value;
    }
    body.referral = {
      consent: true,
      contact_preference: form.elements.contact_preference.value || "do_not_contact",
      ...(Object.keys(contact).length ? { contact } : {}),
    };
  }
  return { body, contact };
}

function bsnErrors() {
  const errors = [];
  chosen.forEach((q, i) => {
    if (containsBsn($(`note-${i}`).value)) {
      errors.push({ id: `note-${i}`, message: `De notitie bij vraag ${i + 1} lijkt een BSN te bevatten. Het IDO mag geen BSN vastleggen: haal het nummer weg.` });
    }
  });
  if (containsBsn($("contact-name").value)) {
    errors.push({ id: "contact-name", message: "De naam lijkt een BSN te bevatten. Het IDO mag geen BSN vastleggen: haal het nummer weg." });
  }
  return errors;
}

function resetForm() {
  $("visit").reset();
  chosen = [];
  active = -1;
  renderChosen();
  renderOptions();
  $("contact-fields").hidden = true;
  $("theme-announcer").textContent = "";
  clearErrors();
  idempotencyKey = crypto.randomUUID();
}

$("visit").addEventListener("submit", async (event) => {
  event.preventDefault();
  const { body, contact } = collect();
  const blocked = bsnErrors(); // checked before anything is sent: a BSN never leaves the browser
  if (blocked.length) return showErrors(blocked);
  $("save").disabled = true;
  let answer;
  try {
    answer = await api("POST", "/v1/help-requests", body, { "Idempotency-Key": idempotencyKey });
  } catch (error) {
    if (!(error instanceof SignedOut)) showErrors([{ id: null, message: "De balie is niet bereikbaar. Er is niets opgeslagen; probeer het opnieuw." }]);
    return;
  } finally {
    $("save").disabled = false;
  }
  if (answer.status === 409) {
    idempotencyKey = crypto.randomUUID();
    return showErrors([{ id: null, message: "Dit bezoek was al met andere gegevens opgeslagen. Controleer de bezoeken van vandaag en sla zo nodig opnieuw op." }]);
  }
  if (!answer.ok) return showErrors(apiErrors(answer));
  lastVisit = { id: answer.data.id, contact: contact && (contact.phone || contact.email) ? contact : null };
  resetForm();
  showOutcome(answer.data);
  $("outcome-section").hidden = false;
  $("outcome-title").focus();
  follow(answer.data.id, Date.now());
  refreshToday();
});

$("next-visit").addEventListener("click", () => {
  lastVisit = null;
  clearTimeout(pollTimer);
  $("outcome").replaceChildren();
  $("advice").replaceChildren();
  $("outcome-section").hidden = true;
  document.querySelector('input[name="channel"]:checked').focus();
});

// -- the outcome, as routing decides it -------------------------------------------------------

function decisionText(decision) {
  const organisation = decision.organisation ? label("organisations", decision.organisation) : null;
  switch (decision.outcome) {
    case "referred":
      return `Warm doorverwezen naar ${organisation}`;
    case "informed":
      return `Niet doorverwezen (geen toestemming): wijs de bezoeker de weg naar ${organisation}`;
    case "course_advised":
      return "Cursus geadviseerd";
    case "helped_at_desk":
      return "Geholpen aan de balie";
    default:
      return label("outcomes", decision.outcome);
  }
}

function themeLabel(question) {
  const found = themes.find((t) => t.theme === question.theme && t.subtheme === (question.subtheme || null));
  return found ? found.label : [question.theme, question.subtheme].filter(Boolean).join(" – ");
}

function showOutcome(visit) {
  const box = $("outcome");
  const saved = el("p", {}, `Bezoek opgeslagen om ${time(visit.registered_at)}. `);
  if (!FINISHED.has(visit.status)) {
    saved.append("De uitkomst wordt bepaald…");
    box.replaceChildren(saved);
    return;
  }
  const items = visit.request.questions.map((question, index) => {
    const decision = visit.decisions.find((d) => d.question_index === index);
    const referral = visit.referrals.find((r) => r.question_index === index);
    const text = decision ? decisionText(decision) : "Nog niet bepaald";
    const state = referral ? ` (${label("statuses", referral.status)})` : "";
    return el("li", { "data-outcome": decision ? decision.outcome : "pending" }, `${themeLabel(question)}: ${text}${state}`);
  });
  box.replaceChildren(saved, el("ul", { class: "outcome-list" }, ...items));
}

async function follow(id, started) {
  clearTimeout(pollTimer);
  let answer;
  try {
    answer = await api("GET", `/v1/help-requests/${encodeURIComponent(id)}`);
  } catch {
    return;
  }
  if (!lastVisit || lastVisit.id !== id) return; // the staff member moved on
  if (answer.ok) {
    showOutcome(answer.data);
    if (FINISHED.has(answer.data.status)) {
      refreshToday();
      const advised = answer.data.decisions.some((d) => d.outcome === "course_advised");
      if (advised) showAdvice(id, Date.now());
      return;
    }
  }
  if (Date.now() - started > 60000) {
    $("outcome").append(el("p", {}, "De uitkomst laat op zich wachten; u ziet haar straks in de lijst van vandaag."));
    return;
  }
  pollTimer = setTimeout(() => follow(id, started), 700);
}

// -- course advice: upcoming runs, and enrolment in one click ---------------------------------

async function showAdvice(id, started) {
  const box = $("advice");
  let answer;
  try {
    answer = await api("GET", `${COURSES}/v1/course-advice/${encodeURIComponent(id)}`);
  } catch (error) {
    if (!(error instanceof SignedOut)) box.replaceChildren(el("p", {}, "Het cursusadvies kon niet worden opgehaald."));
    return;
  }
  if (!lastVisit || lastVisit.id !== id) return;
  if (answer.status === 404 && Date.now() - started < 15000) {
    box.replaceChildren(el("p", {}, "Het cursusadvies wordt opgehaald…"));
    setTimeout(() => showAdvice(id, started), 1000);
    return;
  }
  if (!answer.ok) {
    box.replaceChildren(el("p", {}, "Er is (nog) geen cursusadvies voor dit bezoek."));
    return;
  }
  const advice = answer.data;
  const heading = el("h3", {}, "Cursusadvies");
  const types = el("p", {}, `Geadviseerd: ${advice.course_types.map((c) => label("course_types", c)).join(", ")}.`);
  if (!advice.runs.length) {
    box.replaceChildren(heading, types, el("p", {}, "Uw bibliotheek heeft nog geen cursus gepland die hierbij past."));
    return;
  }
  const contact = lastVisit.contact || {};
  const form = el("form", { id: "enrol", novalidate: true });
  form.append(
    el("p", { class: "hint" }, "Inschrijven kan alleen als de bezoeker wil dat de bibliotheek over de cursus contact opneemt."),
    el("div", { class: "field" }, el("label", { for: "enrol-name" }, "Naam (of roepnaam)"), el("input", { id: "enrol-name", type: "text", autocomplete: "off" })),
    el("div", { class: "field" }, el("label", { for: "enrol-contact" }, "Telefoonnummer of e-mailadres"), el("input", { id: "enrol-contact", type: "text", autocomplete: "off" })),
    el(
      "div",
      { class: "choice field" },
      el("input", { type: "checkbox", id: "enrol-consent" }),
      el("label", { for: "enrol-consent" }, "De bezoeker wil voor deze cursus benaderd worden"),
    ),
  );
  form.querySelector("#enrol-name").value = contact.name || "";
  form.querySelector("#enrol-contact").value = contact.phone || contact.email || "";
  const runs = el("ul", { class: "runs" });
  for (const run of advice.runs) {
    const when = run.sessions.length ? day(run.sessions[0].starts_at) : "datum volgt";
    const button = el("button", { type: "button", "data-run": run.id }, `Inschrijven: ${label("course_types", run.course_type)}, ${when}`);
    button.addEventListener("click", () => enrol(id, run.id, button));
    runs.append(el("li", {}, button, ` ${run.location}, nog ${run.seats_free} ${run.seats_free === 1 ? "plaats" : "plaatsen"} vrij`));
  }
  const result = el("p", { id: "enrol-result", role: "status" });
  box.replaceChildren(heading, types, form, runs, result);
}

async function enrol(id, runId, button) {
  const result = $("enrol-result");
  const name = $("enrol-name").value.trim();
  const reach = $("enrol-contact").value.trim();
  if (!$("enrol-consent").checked || !name || !reach) {
    result.textContent = "Vul naam en telefoonnummer of e-mailadres in en vink de toestemming aan.";
    return;
  }
  const contact = reach.includes("@") ? { email: reach } : { phone: reach };
  button.disabled = true;
  try {
    const answer = await api("POST", `${COURSES}/v1/course-advice/${encodeURIComponent(id)}/enrolments`, {
      run_id: runId,
      name,
      contact,
      consent: true,
    });
    if (answer.ok) {
      const waiting = answer.data.status === "waitlisted";
      result.textContent = waiting ? `De cursus is vol: de bezoeker staat op de wachtlijst (plaats ${answer.data.position}).` : "De bezoeker is ingeschreven.";
    } else {
      result.textContent = `Inschrijven lukte niet: ${problemText(answer)}`;
      button.disabled = false;
    }
  } catch (error) {
    if (!(error instanceof SignedOut)) result.textContent = "De cursusadministratie is niet bereikbaar.";
    button.disabled = false;
  }
}

// -- today's visits ---------------------------------------------------------------------------

function fillLocations(locations) {
  const select = $("location");
  select.replaceChildren(el("option", { value: "" }, "Geen locatie gekozen"));
  for (const location of locations || []) {
    select.append(el("option", { value: location.code }, location.name || location.code));
  }
  if ((locations || []).length === 1) select.value = locations[0].code;
  select.dataset.default = select.value;
}

$("visit").addEventListener("reset", () => {
  setTimeout(() => {
    $("location").value = $("location").dataset.default || "";
  });
});

async function refreshToday() {
  const midnight = new Date();
  midnight.setHours(0, 0, 0, 0);
  const query = new URLSearchParams({ from: midnight.toISOString(), limit: "100" });
  let answer;
  try {
    answer = await api("GET", `/v1/help-requests?${query}`);
  } catch {
    return;
  }
  if (!answer.ok) {
    $("today-status").textContent = "De bezoeken van vandaag konden niet worden geladen.";
    return;
  }
  $("today-status").textContent = answer.data.items.length ? "" : "Vandaag nog geen bezoeken.";
  const rows = answer.data.items.map((visit) => {
    const referrals = visit.referrals.map((r) => {
      const late = r.overdue ? el("span", { class: "badge late" }, "te laat") : null;
      return el("li", { "data-referral": r.referral_id, "data-status": r.status }, `${label("organisations", r.organisation)}: ${label("statuses", r.status)} `, late);
    });
    return el(
      "tr",
      { "data-visit": visit.id },
      el("td", {}, time(visit.registered_at)),
      el("td", {}, visit.request.questions.map(themeLabel).join("; ")),
      el("td", {}, VISIT_STATUS[visit.status] || visit.status),
      el("td", {}, referrals.length ? el("ul", { class: "outcome-list" }, ...referrals) : "—"),
    );
  });
  $("today").tBodies[0].replaceChildren(...rows);
}

$("refresh").addEventListener("click", refreshToday);

// -- start ------------------------------------------------------------------------------------

wireSignIn(signIn, "uw bibliotheek");
