"""Reference data that is part of the public contract: pilot libraries, agencies, themes.

Services seed their own databases from this on first start; after that the data is theirs
(more organisations and rules are added as data, without code changes).
"""

from dataclasses import dataclass, field

PILOT_LIBRARIES: dict[str, str] = {
    "rivierenland": "Bibliotheek Rivierenland",
    "biblionet-groningen": "Biblionet Groningen",
    "zaanstreek": "De Bieb voor de Zaanstreek",
    "kennemerwaard": "Bibliotheek Kennemerwaard",
    "dbieb-leeuwarden": "dbieb Leeuwarden",
    "midden-brabant": "Bibliotheek Midden-Brabant",
    "hengelo": "Bibliotheek Hengelo",
    "aanzet-dordrecht": "Bibliotheek AanZet (Dordrecht)",
    "katwijk": "Bibliotheek Katwijk",
    "rotterdam": "Bibliotheek Rotterdam",
    "venlo": "Bibliotheek Venlo",
    "dalfsen-nieuwleusen": "Bibliotheek Dalfsen-Nieuwleusen",
    "gooi-en-meer": "Bibliotheek Gooi en meer",
    "zeeland": "ZB Planbureau en Bibliotheek van Zeeland",
    "nieuwe-veste-breda": "Bibliotheek De Nieuwe Veste Breda",
}

AGENCIES: dict[str, str] = {
    "belastingdienst": "Belastingdienst (incl. Toeslagen)",
    "cak": "CAK",
    "cbr": "CBR",
    "ciz": "CIZ",
    "cjib": "CJIB",
    "duo": "DUO",
    "svb": "SVB",
    "uwv": "UWV",
    "huurcommissie": "Huurcommissie",
    "lbio": "LBIO",
    "rdw": "RDW",
    "rvr": "Raad voor Rechtsbijstand",
}


@dataclass(frozen=True)
class Theme:
    code: str
    label: str
    # subtheme -> receiving organisation (None: helped at the desk)
    subthemes: dict[str, str | None] = field(default_factory=dict)
    default_organisation: str | None = None


THEMES: dict[str, Theme] = {
    t.code: t
    for t in (
        Theme(
            "digid",
            "DigiD",
            {s: None for s in ("aanvragen", "activeren", "app", "inloggen", "wachtwoord-vergeten", "machtigen")},
        ),
        Theme(
            "belastingen",
            "Belastingen",
            {s: "belastingdienst" for s in ("aangifte", "aanslag", "betalingsregeling")},
            "belastingdienst",
        ),
        Theme(
            "toeslagen",
            "Toeslagen",
            {
                s: "belastingdienst"
                for s in ("huurtoeslag", "zorgtoeslag", "kinderopvangtoeslag", "kindgebonden-budget")
            },
            "belastingdienst",
        ),
        Theme("zorg", "Zorg", {"eigen-bijdrage": "cak", "wlz-indicatie": "ciz", "zorgverzekering": None}),
        Theme("verkeer", "Verkeer en boetes", {"verkeersboete": "cjib", "rijbewijs": "cbr", "voertuig": "rdw"}),
        Theme("studie", "Studie", {"studiefinanciering": "duo", "lening": "duo"}, "duo"),
        Theme(
            "werk-en-uitkering",
            "Werk en uitkering",
            {"ww": "uwv", "wia": "uwv", "ziektewet": "uwv", "aow": "svb", "kinderbijslag": "svb", "anw": "svb"},
        ),
        Theme("wonen", "Wonen", {"huurprijs": "huurcommissie"}),
        Theme("recht", "Recht", {"rechtsbijstand": "rvr", "alimentatie": "lbio"}),
        # Municipal services: no national agency; a municipality's own routing rules may send them
        # to a local partner (a warm referral to the municipal team).
        Theme(
            "gemeente",
            "Gemeente",
            dict.fromkeys(("paspoort", "id-kaart", "parkeren", "afval", "bijstand", "schuldhulp", "wmo")),
        ),
        Theme("overig", "Overig"),
    )
}

# Dutch labels for codes the monitor shows (reporting's dashboard and `GET /v1/labels`). Themes'
# labels are THEMES' own; organisations' are AGENCIES'.
REFERRAL_STATUS_LABELS: dict[str, str] = {
    "sent": "Verstuurd",
    "accepted": "Geaccepteerd",
    "needs_client_action": "Actie van de inwoner nodig",
    "got_help": "Geholpen",
    "could_not_contact": "Geen contact gekregen",
    "not_eligible": "Komt niet in aanmerking",
    "no_capacity": "Geen capaciteit",
    "no_longer_interested": "Geen interesse meer",
    "referred_elsewhere": "Elders naartoe verwezen",
}

OUTCOME_LABELS: dict[str, str] = {
    "helped_at_desk": "Geholpen aan de balie",
    "course_advised": "Cursus geadviseerd",
    "informed": "Geïnformeerd",
    "referred": "Doorverwezen",
}

# The course types courses seeds (its DEFAULT_COURSE_TYPES names); a type the KB adds later is
# shown by its code until it is labelled here.
COURSE_TYPE_LABELS: dict[str, str] = {
    "digisterker": "Digisterker: Werken met de digitale overheid",
    "klik-en-tik": "Klik & Tik",
    "klik-en-tik-veilig-online": "Klik & Tik: Veilig online",
    "doorvragen": "IDO-training: doorvragen",
    "zakelijke-empathie": "IDO-training: zakelijke empathie",
    "privacy-in-het-ido": "IDO-training: privacy in het IDO",
}
