"""Credentials that age (issue 11.4) on the real broker: an issued credential's expiry is on the
record, and a service loads every revocation before it takes its first request."""

from datetime import UTC, datetime, timedelta

import pytest

from shared import credentials
from shared.credentials import RevocationList

pytestmark = pytest.mark.infra


async def test_the_expiry_is_recorded_with_the_issued_credential(infra, tmp_path):
    settings = infra.model_copy(update={"credential_keys_dir": tmp_path})
    credential_id, _ = await credentials.create(settings, "agency", "uwv", valid_for=timedelta(days=30))
    recorded = (await credentials.registry(settings.kafka_bootstrap_servers))[credential_id]
    expires = datetime.fromisoformat(recorded["expires_at"])
    assert timedelta(days=29, hours=23) < expires - datetime.now(UTC) <= timedelta(days=30)


async def test_a_service_knows_every_revocation_before_its_first_request(infra, tmp_path):
    settings = infra.model_copy(update={"credential_keys_dir": tmp_path})
    revoked, _ = await credentials.create(settings, "library", "venlo")
    kept, _ = await credentials.create(settings, "library", "venlo")
    await credentials.revoke(settings, revoked)

    starting = RevocationList()
    assert not starting.loaded, "readiness fails until the list is loaded"
    await starting.load(settings.kafka_bootstrap_servers)
    assert starting.loaded and revoked in starting and kept not in starting
