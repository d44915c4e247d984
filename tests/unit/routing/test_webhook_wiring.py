"""install(): the API, a consumer group of its own on every organisation's topic, the delivery worker."""

import re
from pathlib import Path
from types import SimpleNamespace

from fastapi import FastAPI

from services.routing.adapters.webhooks import TokenBox
from services.routing.bootstrap import RoutingSettings
from services.routing.entrypoints import webhooks
from shared import reference
from shared.db import Database
from shared.events import catalog
from shared.events.catalog import EVENT_TYPES, dlq_topic, referral_topic
from shared.kafka import make_broker
from shared.sealing import new_data_key


def test_install_wires_api_consumer_and_worker(tmp_path):
    background = []
    runtime = SimpleNamespace(
        broker=make_broker("127.0.0.1:9", client_id="ido-tests"),  # never started
        db=Database("postgresql://ido_routing@127.0.0.1:9/ido_routing", Path("/nonexistent")),  # never connected
        authenticated=lambda: None,
        add_background=background.append,
        consumer=SimpleNamespace(group_id="ido-routing"),
    )
    app = FastAPI()
    settings = RoutingSettings(public_base_url="https://routing.ido.example")
    worker = webhooks.install(runtime, app, settings, webhooks.WebhookSettings(secrets_key_file=tmp_path / "key"))

    assert {"/v1/webhooks", "/v1/webhooks/{subscription_id}/deliveries"} <= set(app.openapi()["paths"])
    (subscriber,) = runtime.broker.subscribers  # one group member for every organisation's topic
    matches = re.compile(subscriber._pattern).match
    assert all(matches(referral_topic(a)) for a in reference.AGENCIES), "every agency's topic"
    assert matches(referral_topic("welzijn-tiel")), "a local partner's topic, also one made later"
    assert not matches(dlq_topic(referral_topic("uwv"))), "not the dead letters"
    assert not matches(catalog.ROUTING)
    assert subscriber.group_id == "ido-routing-webhooks"
    assert len(background) == 2 and background[-1] == worker.run, "sealing old tokens, then delivering"
    assert (tmp_path / "key").stat().st_size == 32, "the token key is made on first start"


def test_every_event_type_on_an_agency_topic_is_queued():
    handlers = webhooks.agency_handlers("ido.referrals.cak.v1", "cak", TokenBox(new_data_key()))
    assert set(handlers) == set(EVENT_TYPES)


def test_the_handshake_origin_defaults_to_routings_public_host():
    assert webhooks.handshake_origin(webhooks.WebhookSettings(), "https://routing.ido.example:8443/x") == (
        "routing.ido.example"
    )
    assert webhooks.handshake_origin(webhooks.WebhookSettings(origin="ido.nl"), "http://127.0.0.1:8002") == "ido.nl"
