"""Where the tests get their broker and database, in this order:
1. KAFKA_BOOTSTRAP_SERVERS and PG_ADMIN_URL, when both are set (an existing broker and server);
2. testcontainers (official Kafka and PostgreSQL images), when a Docker engine answers;
3. the project's own local Kafka + PostgreSQL (deploy/local), started here if not running.
Then, as `make up` does, `ido db setup` gives every service its role and database and `ido topics
apply` makes the topics and (on an authenticating broker) each service's principal and ACLs.
With CI=true a broker or database that cannot be had is a failure, never a skip."""

import asyncio
import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from typing import NoReturn

import pytest

from shared import access
from shared.db import setup_service_databases
from shared.kafka import apply_platform_topics, client_config
from shared.settings import REPO_ROOT, InfraSettings

LOCAL = REPO_ROOT / "deploy" / "local"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str) -> NoReturn:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: infrastructure tests must run, not skip)", pytrace=False)
    pytest.skip(reason)


def _reachable(host_port: str, timeout: float = 2.0) -> bool:
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def _docker_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _pg_host_port(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0].split("@")[-1]


class _Infra:
    """Starts what is needed once per session and stops only what it started itself."""

    def __init__(self) -> None:
        self.started_local: list[str] = []
        self.containers: list = []

    def provide(self) -> InfraSettings:
        if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") and os.environ.get("PG_ADMIN_URL"):
            settings = InfraSettings()
        elif _docker_answers():
            settings = self._containers()
        else:
            settings = self._local()
        kafka = settings.kafka_bootstrap_servers.split(",")[0]
        if not _reachable(kafka):
            unavailable(f"Kafka broker not reachable at {kafka}")
        if not _reachable(_pg_host_port(settings.pg_admin_url)):
            unavailable(f"PostgreSQL not reachable at {_pg_host_port(settings.pg_admin_url)}")
        asyncio.run(setup_service_databases(settings))
        # As `ido topics apply` does for `make up`: the topics, and the services' principals.
        asyncio.run(apply_platform_topics(settings))
        if (admin := client_config()).authenticates:
            broker = access.BrokerAccess(settings.kafka_bootstrap_servers, admin)
            access.apply_service_access(broker, admin, settings.kafka_bootstrap_servers, settings.kafka_clients_dir)
        return settings

    def _containers(self) -> InfraSettings:
        from testcontainers.kafka import KafkaContainer
        from testcontainers.postgres import PostgresContainer

        kafka = KafkaContainer("apache/kafka:4.1.1").with_kraft()
        postgres = PostgresContainer("postgres:18", username="ido_admin", password=uuid.uuid4().hex)
        for container in (kafka, postgres):
            container.start()
            self.containers.append(container)
        host, port = postgres.get_container_host_ip(), postgres.get_exposed_port(5432)
        passfile = REPO_ROOT / ".local" / "testcontainers.pgpass"
        passfile.parent.mkdir(exist_ok=True)
        passfile.write_text(f"*:*:*:ido_admin:{postgres.password}\n")
        passfile.chmod(0o600)
        os.environ.update(
            KAFKA_BOOTSTRAP_SERVERS=kafka.get_bootstrap_server(),
            KAFKA_CLIENT_CONFIG="",  # the container's broker does not authenticate
            PG_HOST=host,
            PG_PORT=str(port),
            PGPASSFILE=str(passfile),
        )
        return InfraSettings()

    def _local(self) -> InfraSettings:
        settings = InfraSettings()
        for name, address in (
            ("kafka", settings.kafka_bootstrap_servers),
            ("postgres", _pg_host_port(settings.pg_admin_url)),
        ):
            if _reachable(address):
                continue
            result = subprocess.run([str(LOCAL / f"{name}.sh"), "start"], capture_output=True, text=True, timeout=900)
            if result.returncode != 0:
                unavailable(f"could not start local {name}: {result.stderr[-2000:]}")
            self.started_local.append(name)
        return settings

    def close(self) -> None:
        for container in self.containers:
            container.stop()
        for name in reversed(self.started_local):
            subprocess.run([str(LOCAL / f"{name}.sh"), "stop"], capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def infra() -> Iterator[InfraSettings]:
    provider = _Infra()
    try:
        yield provider.provide()
    finally:
        provider.close()


@pytest.fixture
def unique() -> str:
    """A short unique suffix for topics, groups and databases of one test."""
    return uuid.uuid4().hex[:10]
