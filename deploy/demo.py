"""`make demo`: a simulated month of IDO traffic for the 15 pilot libraries, sent through the
public APIs as libraries, agencies and the KB would, with progress; then the dashboard URL, and
the desk's and the inbox's with a library's and an agency's credential to paste into them.

The question mix follows the desks' experience: DigiD the most common, then allowances, taxes,
care, traffic fines; about four in ten visitors agree to a warm referral."""

import asyncio
import random
import sys
import time
from datetime import UTC, datetime, timedelta

import httpx

from shared import credentials, reference
from shared.settings import InfraSettings

INTAKE, ROUTING, COURSES, SUBSIDY, REPORTING = (f"http://127.0.0.1:{p}" for p in (8001, 8002, 8003, 8004, 8005))
VISITS_PER_LIBRARY = 24  # a month at a small desk: about one visit per opening day
MIX = [  # (weight, theme, subthemes)
    (34, "digid", ["aanvragen", "activeren", "app", "inloggen", "wachtwoord-vergeten", "machtigen"]),
    (14, "toeslagen", ["huurtoeslag", "zorgtoeslag", "kinderopvangtoeslag"]),
    (10, "belastingen", ["aangifte", "aanslag", "betalingsregeling"]),
    (10, "zorg", ["eigen-bijdrage", "wlz-indicatie", "zorgverzekering"]),
    (8, "verkeer", ["verkeersboete", "rijbewijs", "voertuig"]),
    (8, "werk-en-uitkering", ["ww", "wia", "aow", "kinderbijslag"]),
    (5, "studie", ["studiefinanciering"]),
    (4, "wonen", ["huurprijs"]),
    (3, "recht", ["rechtsbijstand", "alimentatie"]),
    (4, "gemeente", []),
]
DESK_LIBRARY, INBOX_AGENCY = "rivierenland", "belastingdienst"  # whose credentials are printed
OUTCOMES = ["accepted", "got_help", "needs_client_action", "could_not_contact", "no_longer_interested"]


def progress(label: str, done: int, total: int) -> None:
    filled = int(30 * done / max(total, 1))
    if done != total and filled == int(30 * (done - 1) / max(total, 1)):
        return  # redraw only when the bar grows
    sys.stderr.write(f"\r  {label:<28} [{'#' * filled}{'.' * (30 - filled)}] {done}/{total}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


async def issue_credentials() -> dict[str, str]:
    settings = InfraSettings()
    wanted = (
        [("library", c) for c in reference.PILOT_LIBRARIES]
        + [("agency", a) for a in reference.AGENCIES]
        + [("kb", "kb")]
    )
    tokens = {}
    for i, (role, org) in enumerate(wanted, 1):
        _, tokens[org] = await credentials.create(settings, role, org, issuer="ido-demo")
        progress("credentials", i, len(wanted))
    return tokens


def visit(rng: random.Random) -> dict:
    questions = []
    for _ in range(rng.choice([1, 1, 1, 2])):
        _, theme, subthemes = rng.choices(MIX, weights=[m[0] for m in MIX])[0]
        questions.append(
            {
                "category": "digital_government",
                "theme": theme,
                **({"subtheme": rng.choice(subthemes)} if subthemes else {}),
            }
        )
    consent = rng.random() < 0.4
    body = {
        "channel": rng.choices(["walk_in", "phone", "appointment", "email"], weights=[70, 15, 10, 5])[0],
        "questions": questions,
        "help_given": rng.sample(["informed", "coached", "helped_at_desk", "course_advised"], k=rng.choice([1, 2])),
        "duration_minutes": rng.choice([10, 15, 20, 30, 45]),
    }
    if consent:
        body["referral"] = {"consent": True, "contact_preference": rng.choice(["phone", "email", "do_not_contact"])}
    return body


async def main() -> None:
    rng = random.Random(2019)
    started = time.monotonic()
    print("IDO demo: a simulated month for the 15 pilot libraries", file=sys.stderr)
    tokens = await issue_credentials()
    auth = {org: {"Authorization": f"Bearer {t}"} for org, t in tokens.items()}
    libraries = list(reference.PILOT_LIBRARIES)
    async with httpx.AsyncClient(timeout=30) as http:
        for i, library in enumerate(libraries, 1):
            place = {
                "name": f"IDO {reference.PILOT_LIBRARIES[library]}",
                "postcode": f"{1000 + i * 500} AA",
                "city": library,
                "opening_hours": [{"day": d, "opens": "10:00", "closes": "16:00"} for d in ("tue", "thu")],
                "staffing": {"staff": 2, "volunteers": 3},
            }
            await http.put(f"{INTAKE}/v1/locations/centrum", json=place, headers=auth[library])
            progress("IDO locations", i, len(libraries))

        request_ids = []
        total = len(libraries) * VISITS_PER_LIBRARY
        for n in range(total):
            library = libraries[n % len(libraries)]
            answer = await http.post(f"{INTAKE}/v1/help-requests", json=visit(rng), headers=auth[library])
            if answer.status_code == 201:
                request_ids.append((library, answer.json()["id"]))
            progress("help requests", n + 1, total)

        sys.stderr.write("  waiting for routing ...\n")
        await asyncio.sleep(5)
        referrals = []
        for library, request_id in request_ids:
            body = (await http.get(f"{INTAKE}/v1/help-requests/{request_id}", headers=auth[library])).json()
            referrals += [(r["organisation"], r["referral_id"]) for r in body.get("referrals", [])]
        for i, (agency, referral_id) in enumerate(referrals, 1):
            if agency in auth and rng.random() < 0.7:
                await http.get(f"{ROUTING}/v1/referrals/{referral_id}", headers=auth[agency])
                await http.post(
                    f"{ROUTING}/v1/referrals/{referral_id}/status",
                    json={"status": rng.choice(OUTCOMES)},
                    headers=auth[agency],
                )
            progress("agencies report back", i, len(referrals))

        start = (datetime.now(UTC) + timedelta(days=7)).replace(hour=10, minute=0, second=0, microsecond=0)
        runs = 0
        for i, library in enumerate(libraries[:8], 1):
            sessions = [
                {
                    "starts_at": (start + timedelta(days=7 * k)).isoformat(),
                    "ends_at": (start + timedelta(days=7 * k, hours=2)).isoformat(),
                }
                for k in range(8)
            ]
            run = await http.post(
                f"{COURSES}/v1/course-runs",
                json={"course_type": "klik-en-tik", "location": "centrum", "sessions": sessions},
                headers=auth[library],
            )
            if run.status_code == 201:
                runs += 1
                for p in range(rng.randint(4, 11)):
                    person = {
                        "name": f"Deelnemer {p}",
                        "contact": {"phone": f"06{rng.randint(10000000, 99999999)}"},
                        "consent": True,
                    }
                    await http.post(
                        f"{COURSES}/v1/course-runs/{run.json()['id']}/enrolments", json=person, headers=auth[library]
                    )
            progress("course runs and enrolments", i, 8)

        now = datetime.now(UTC)
        scheme = {
            "name": "Tijdelijke regeling IDO (demo)",
            "opens": (now - timedelta(days=30)).isoformat(),
            "closes": (now + timedelta(days=30)).isoformat(),
            "rates": {str(now.year): "0.05", str(now.year + 1): "0.08"},
            "budget_ceiling_cents": 250_000_00,
        }
        code = f"demo-{now:%Y%m%d%H%M}"
        await http.put(f"{SUBSIDY}/v1/schemes/{code}", json=scheme, headers=auth["kb"])
        for i, library in enumerate(libraries, 1):
            body = {
                "scheme": code,
                "inhabitants": rng.randint(40_000, 250_000),
                "ido_opening_date": now.date().isoformat(),
                "planned_course_offers": rng.randint(2, 8),
                "contact_person": {"name": "Coördinator IDO", "email": f"ido@{library}.nl"},
            }
            applied = await http.post(f"{SUBSIDY}/v1/applications", json=body, headers=auth[library])
            if applied.status_code == 201 and rng.random() < 0.8:
                decision = {"decision": "grant", "reason": "voldoet aan de regeling"}
                await http.post(
                    f"{SUBSIDY}/v1/applications/{applied.json()['id']}/decision", json=decision, headers=auth["kb"]
                )
            progress("subsidy applications", i, len(libraries))

    print(
        f"\nDone in {time.monotonic() - started:.0f} s: {len(request_ids)} visits, {len(referrals)} referrals, "
        f"{runs} course runs, {len(libraries)} subsidy applications."
    )
    print(f"Dashboard (KB): {REPORTING}/dashboard#token={tokens['kb']}")
    # The desk and the inbox ask for the credential once per browser tab (never in a URL).
    print(f"\nDesk (library staff): {INTAKE}/desk")
    print(f"  credential of {reference.PILOT_LIBRARIES[DESK_LIBRARY]}, to paste: {tokens[DESK_LIBRARY]}")
    print(f"Inbox (an agency): {ROUTING}/inbox")
    print(f"  credential of {reference.AGENCIES[INBOX_AGENCY]}, to paste: {tokens[INBOX_AGENCY]}")


if __name__ == "__main__":
    asyncio.run(main())
