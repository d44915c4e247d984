"""Who may do what on the broker, from the declarative definition (shared/events/topics.toml):
each service's principal and ACLs, and a receiving organisation's read-only principal per Kafka
credential. `Grant`s are plain data; `BrokerAccess` makes them true on the cluster (SCRAM users
and ACLs, through confluent-kafka's admin client: aiokafka has no API for either)."""

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from shared.events.catalog import dlq_topic
from shared.kafka_security import ClientConfig, read_client_config
from shared.topics import ORGANISATION, definition

Operation = Literal["READ", "WRITE", "CREATE"]
SCRAM_ITERATIONS = 8192
TIMEOUT = 15.0


@dataclass(frozen=True, order=True)
class Grant:
    """One ALLOW ACL: `principal` may `operation` on the topic or group `name` (or, if
    `prefixed`, on every one whose name starts with it), from any host."""

    principal: str
    resource: Literal["topic", "group"]
    name: str
    prefixed: bool
    operation: Operation

    def __str__(self) -> str:
        what = f"{self.name}*" if self.prefixed else self.name
        return f"{self.principal} may {self.operation} {self.resource} {what}"

    def binding(self) -> AclBinding:
        return AclBinding(
            ResourceType.TOPIC if self.resource == "topic" else ResourceType.GROUP,
            self.name,
            ResourcePatternType.PREFIXED if self.prefixed else ResourcePatternType.LITERAL,
            f"User:{self.principal}",
            "*",
            AclOperation[self.operation],
            AclPermissionType.ALLOW,
        )

    def filter(self) -> AclBindingFilter:
        """The filter that matches exactly this ACL (to delete it)."""
        b = self.binding()
        return AclBindingFilter(
            b.restype, b.name, b.resource_pattern_type, b.principal, b.host, b.operation, b.permission_type
        )

    @classmethod
    def of(cls, binding: AclBinding) -> "Grant":
        return cls(
            binding.principal.removeprefix("User:"),
            "topic" if binding.restype == ResourceType.TOPIC else "group",
            binding.name,
            binding.resource_pattern_type == ResourcePatternType.PREFIXED,
            AclOperation(binding.operation).name,  # type: ignore[arg-type]
        )


def services() -> list[str]:
    return sorted(definition()["services"])


def service_principal(service: str) -> str:
    return f"ido-{service}"


def service_grants(service: str) -> list[Grant]:
    """What a service's principal may do: read what it consumes (and write the dead letters of
    it) and what it follows, write what it produces, create what it creates, and use its own
    consumer groups."""
    spec = definition()["services"][service]
    principal = service_principal(service)
    grants = {Grant(principal, "group", principal, True, "READ")}
    uses: tuple[tuple[Operation, str], ...] = (
        ("READ", "consumes"),
        ("READ", "follows"),
        ("WRITE", "produces"),
        ("CREATE", "creates"),
    )
    for operation, key in uses:
        for topic in spec.get(key, []):
            grants.add(_topic_grant(principal, topic, operation))
    for topic in spec.get("consumes", []):
        if ORGANISATION not in topic:  # an organisation prefix covers its `.dlq` already
            grants.add(Grant(principal, "topic", dlq_topic(topic), False, "WRITE"))
    return sorted(grants)


def _topic_grant(principal: str, topic: str, operation: Operation) -> Grant:
    if ORGANISATION in topic:
        return Grant(principal, "topic", topic.partition(ORGANISATION)[0], True, operation)
    return Grant(principal, "topic", topic, False, operation)


def organisation_principal(code: str) -> str:
    """A new principal per Kafka credential, so revoking one credential removes exactly it."""
    return f"org-{code}-{secrets.token_hex(6)}"


def organisation_grants(principal: str, code: str) -> list[Grant]:
    spec = definition()["organisations"]
    return [
        Grant(principal, "topic", spec["reads"].replace(ORGANISATION, code), False, "READ"),
        Grant(principal, "group", spec["groups"].replace(ORGANISATION, code), True, "READ"),
    ]


def new_password() -> str:
    return secrets.token_urlsafe(24)


@dataclass
class AccessReport:
    principals: list[str] = field(default_factory=list)
    granted: list[Grant] = field(default_factory=list)
    removed: list[Grant] = field(default_factory=list)


class BrokerAccess:
    """SCRAM users and ACLs on the cluster, as the administrator (super user)."""

    def __init__(self, bootstrap_servers: str, config: ClientConfig) -> None:
        self.admin = AdminClient(config.librdkafka(bootstrap_servers))

    def set_user(self, user: str, password: str) -> None:
        info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
        upsert = UserScramCredentialUpsertion(user, info, password.encode())
        for future in self.admin.alter_user_scram_credentials([upsert], request_timeout=TIMEOUT).values():
            future.result()

    def delete_user(self, user: str) -> bool:
        """Remove the user's SCRAM credential; False if it had none."""
        deletion = UserScramCredentialDeletion(user, ScramMechanism.SCRAM_SHA_512)
        try:
            for future in self.admin.alter_user_scram_credentials([deletion], request_timeout=TIMEOUT).values():
                future.result()
        except KafkaException as exc:
            if "RESOURCE_NOT_FOUND" in str(exc) or exc.args[0].code() == 91:  # no such credential
                return False
            raise
        return True

    def grants_of(self, principal: str) -> list[Grant]:
        found = self.admin.describe_acls(_filter(principal), request_timeout=TIMEOUT).result()
        return sorted(Grant.of(b) for b in found if b.permission_type == AclPermissionType.ALLOW)

    def converge(self, principal: str, wanted: list[Grant], *, fix: bool = True) -> AccessReport:
        """Make the principal's ACLs exactly `wanted`: add what is missing, remove the rest
        (unless not `fix`: then only report both)."""
        have = set(self.grants_of(principal))
        missing, extra = sorted(set(wanted) - have), sorted(have - set(wanted))
        if not fix:
            return AccessReport([principal], missing, extra)
        if missing:
            for future in self.admin.create_acls([g.binding() for g in missing], request_timeout=TIMEOUT).values():
                future.result()
        if extra:
            filters = [g.filter() for g in extra]
            for future in self.admin.delete_acls(filters, request_timeout=TIMEOUT).values():
                future.result()
        return AccessReport([principal], missing, extra)

    def remove(self, principal: str) -> list[Grant]:
        """Every ACL of the principal, gone; returns what was removed."""
        removed = self.admin.delete_acls([_filter(principal)], request_timeout=TIMEOUT)
        return sorted(Grant.of(b) for future in removed.values() for b in future.result())


def _filter(principal: str) -> AclBindingFilter:
    anything: Any = None  # a filter's None matches any name, any host
    return AclBindingFilter(
        ResourceType.ANY,
        anything,
        ResourcePatternType.ANY,
        f"User:{principal}",
        anything,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )


def _exact(grant: Grant) -> AclBindingFilter:
    b = grant.binding()
    return AclBindingFilter(
        b.restype, b.name, b.resource_pattern_type, b.principal, b.host, b.operation, b.permission_type
    )


def apply_service_access(
    access: BrokerAccess, admin: ClientConfig, bootstrap_servers: str, clients_dir: Path, *, fix: bool = True
) -> AccessReport:
    """Every service's principal with its ACLs, and its client configuration in `clients_dir`
    (`ido-<service>.properties`, 0600, over the transport of the administrator's `admin`). A
    principal keeps the password its file holds, so running this again changes nothing the
    services use. Without `fix`, only reports."""
    report = AccessReport()
    clients_dir.mkdir(parents=True, exist_ok=True)
    for service in services():
        principal = service_principal(service)
        if fix:
            path = clients_dir / f"{principal}.properties"
            password = _password_in(path) or new_password()
            access.set_user(principal, password)
            path.touch(mode=0o600)
            path.write_text(admin.properties(bootstrap_servers, principal, password))
        done = access.converge(principal, service_grants(service), fix=fix)
        report.principals.append(principal)
        report.granted += done.granted
        report.removed += done.removed
    return report


def _password_in(path: Path) -> str | None:
    return read_client_config(path).password if path.is_file() else None
