"""Issuing and revoking credentials, and distributing revocations to every service.

Issue and revoke are facts on the compacted topic `ido.credentials.v1` (never the secret).
Every service instance reads that topic whole, without a consumer group, and keeps the set of
revoked credential ids in memory, so it can refuse a revoked credential without reading
another service's database."""

import json
from datetime import UTC, datetime, timedelta

import jwt
from faststream.kafka import KafkaBroker
from faststream.middlewares import AckPolicy

from shared.auth import KeyStore, Role, issue_credential
from shared.events import catalog
from shared.events.envelope import parse_event
from shared.kafka import consumer_client, make_broker, publish_event, topic_partitions
from shared.logging import get_logger
from shared.outbox import EventFactory
from shared.settings import InfraSettings

log = get_logger(__name__)


class RevocationList:
    def __init__(self) -> None:
        self.revoked: set[str] = set()
        self.loaded = False

    def __contains__(self, credential_id: object) -> bool:
        return credential_id in self.revoked

    async def load(self, bootstrap: str) -> None:
        """Read the credentials topic to its end before the service takes requests, so that a
        revocation holds from the first request after a (re)start; `follow` keeps it current."""
        self.revoked |= {cid for cid, c in (await registry(bootstrap)).items() if c.get("revoked_at")}
        self.loaded = True

    def follow(self, broker: KafkaBroker) -> None:
        """Subscribe without a group: each instance reads every partition from the start."""

        async def raw(msg) -> bytes:  # type: ignore[no-untyped-def]
            return msg.body

        @broker.subscriber(
            catalog.CREDENTIALS, group_id=None, auto_offset_reset="earliest", ack_policy=AckPolicy.MANUAL, decoder=raw
        )
        async def on_credential_event(body: bytes) -> None:
            try:
                event = parse_event(body)
            except ValueError:
                log.error("unreadable record on the credentials topic ignored")
                return
            if event.name == catalog.CredentialRevoked.event_name:
                self.revoked.add(catalog.CredentialRevoked.model_validate(event.data).credential_id)


async def _publish(settings: InfraSettings, issuer: str, data: catalog.EventData) -> None:
    events = EventFactory(service=issuer, oin=settings.oin, base_url="")
    broker = make_broker(settings.kafka_bootstrap_servers, client_id=issuer)
    await broker.start()
    try:
        pending = events.create(data, correlation_id=None)
        await publish_event(broker, pending.event, pending.topic)
    finally:
        await broker.stop()


async def create(
    settings: InfraSettings,
    role: Role,
    organisation: str,
    *,
    issuer: str = "ido-cli",
    valid_for: timedelta | None = None,
    kafka_principal: str | None = None,
) -> tuple[str, str]:
    """Issue a credential (signed with the key in IDO_CREDENTIAL_KEYS_DIR), valid for `valid_for`
    (default IDO_CREDENTIAL_DAYS), and record the fact; only once the broker has it is the token
    returned. Returns (credential id, token)."""
    valid_for = valid_for or timedelta(days=settings.credential_days)
    credential_id, token = issue_credential(KeyStore(settings.credential_keys_dir), role, organisation, valid_for)
    kid = jwt.get_unverified_header(token)["kid"]
    now = datetime.now(UTC)
    issued = catalog.CredentialIssued(
        credential_id=credential_id,
        role=role,
        organisation=organisation,
        key_id=kid,
        issued_at=now,
        expires_at=now + valid_for,
        kafka_principal=kafka_principal,
    )
    await _publish(settings, issuer, issued)
    return credential_id, token


async def registry(bootstrap: str) -> dict[str, dict]:
    """Every credential ever issued, with its revocation if any: the topic read to its end."""
    consumer = consumer_client(bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = await topic_partitions(bootstrap, catalog.CREDENTIALS)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        credentials: dict[str, dict] = {}
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    event = json.loads(record.value)
                    entry = credentials.setdefault(event["data"]["credential_id"], {})
                    entry |= event["data"]
        return credentials
    finally:
        await consumer.stop()


async def revoke(settings: InfraSettings, credential_id: str) -> dict | None:
    """Revoke a credential by id; returns what was revoked, or None if it was never issued."""
    known = (await registry(settings.kafka_bootstrap_servers)).get(credential_id)
    if known is None:
        return None
    revoked = catalog.CredentialRevoked(
        credential_id=credential_id,
        role=known["role"],
        organisation=known["organisation"],
        revoked_at=datetime.now(UTC),
    )
    await _publish(settings, "ido-cli", revoked)
    return known
