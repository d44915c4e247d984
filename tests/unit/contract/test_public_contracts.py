"""Contract tests: the published promises (codes, paths, topics, documents) stay as published."""

import json

from services.intake.bootstrap import build_app as build_intake
from services.routing.bootstrap import build_app as build_routing
from shared import reference
from shared.events import asyncapi, catalog
from shared.settings import REPO_ROOT

PILOTS = [
    "rivierenland",
    "biblionet-groningen",
    "zaanstreek",
    "kennemerwaard",
    "dbieb-leeuwarden",
    "midden-brabant",
    "hengelo",
    "aanzet-dordrecht",
    "katwijk",
    "rotterdam",
    "venlo",
    "dalfsen-nieuwleusen",
    "gooi-en-meer",
    "zeeland",
    "nieuwe-veste-breda",
]
AGENCIES = ["belastingdienst", "cak", "cbr", "ciz", "cjib", "duo", "svb", "uwv", "huurcommissie", "lbio", "rdw", "rvr"]


def test_library_and_agency_codes_are_the_published_ones():
    assert list(reference.PILOT_LIBRARIES) == PILOTS
    assert list(reference.AGENCIES) == AGENCIES


def test_every_agency_has_its_own_referral_topic_and_dlq():
    topics = set(catalog.all_topics())
    for agency in AGENCIES:
        assert f"ido.referrals.{agency}.v1" in topics and f"ido.referrals.{agency}.v1.dlq" in topics


def test_intake_serves_the_fixed_paths():
    spec = build_intake().openapi()
    paths = spec["paths"]
    assert {"post", "get"} <= set(paths["/v1/help-requests"])
    assert "get" in paths["/v1/help-requests/{request_id}"]
    assert "get" in paths["/v1/themes"]
    assert "/healthz" in paths and "/readyz" in paths


def test_routing_serves_the_handover_at_the_dataref_path():
    assert "get" in build_routing().openapi()["paths"]["/v1/referrals/{referral_id}"]


def test_committed_asyncapi_document_and_schemas_match_the_code():
    committed = json.loads((REPO_ROOT / "docs" / "asyncapi.json").read_text())
    assert committed == json.loads(json.dumps(asyncapi.document())), "run: ido asyncapi > docs/asyncapi.json"
    for name, schema in catalog.json_schemas().items():
        on_disk = json.loads((REPO_ROOT / "docs" / "schemas" / f"{name}.json").read_text())
        assert on_disk == schema, "run: ido schemas export docs/schemas"


def test_asyncapi_lists_every_event_type_on_its_topic():
    doc = asyncapi.document()
    addresses = {c["address"]: set(c["messages"]) for c in doc["channels"].values()}
    assert addresses["ido.referrals.{agency}.v1"] == {"ReferredToAgency"}
    assert addresses["ido.help-requests.v1"] == {"HelpRequested", "PersonalDataErased"}
    assert set(doc["components"]["messages"]) == set(catalog.EVENT_TYPES)
