"""How a Kafka client authenticates and encrypts, read from a Kafka client configuration file
(the Java properties format every Kafka tool reads): `security.protocol` (PLAINTEXT,
SASL_PLAINTEXT or SASL_SSL), `sasl.mechanism`, `sasl.jaas.config` with username and password,
and for TLS `ssl.truststore.location` (PEM CA certificates; `ssl.truststore.type=PEM`). One
reading, given to each client library we use in its own terms."""

import re
import ssl
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from faststream.security import BaseSecurity, SASLScram512


@dataclass(frozen=True)
class ClientConfig:
    protocol: str = "PLAINTEXT"
    mechanism: str | None = None
    username: str | None = None
    password: str | None = None
    cafile: str | None = None  # the CA certificates (PEM) the broker's certificate must chain to
    bootstrap: str | None = None  # the file's bootstrap.servers, if it names them

    def bootstrap_servers(self) -> str:
        if self.bootstrap is None:
            raise ValueError("the client configuration names no bootstrap.servers")
        return self.bootstrap

    @property
    def authenticates(self) -> bool:
        return self.mechanism is not None

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def aiokafka(self) -> dict[str, Any]:
        """Keyword arguments of aiokafka's clients."""
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.authenticates:
            options |= {
                "sasl_mechanism": self.mechanism,
                "sasl_plain_username": self.username,
                "sasl_plain_password": self.password,
            }
        if self.tls:
            options["ssl_context"] = _context(self.cafile)
        return options

    def faststream(self) -> BaseSecurity | None:
        if self.mechanism == "SCRAM-SHA-512":
            return SASLScram512(str(self.username), str(self.password), ssl_context=self.aiokafka().get("ssl_context"))
        if self.authenticates:
            raise ValueError(f"unsupported Kafka SASL mechanism: {self.mechanism}")
        return BaseSecurity(ssl_context=_context(self.cafile)) if self.tls else None

    def librdkafka(self, bootstrap_servers: str) -> dict[str, str | int | float | bool]:
        """confluent-kafka's configuration."""
        config: dict[str, str | int | float | bool] = {
            "bootstrap.servers": bootstrap_servers,
            "security.protocol": self.protocol,
        }
        if self.authenticates:
            config |= {"sasl.mechanism": str(self.mechanism), "sasl.username": str(self.username)}
            config["sasl.password"] = str(self.password)
        if self.tls and self.cafile:
            config["ssl.ca.location"] = self.cafile
        return config

    def properties(self, bootstrap_servers: str, username: str, password: str) -> str:
        """A client configuration file for another principal over the same transport."""
        lines = [
            f"bootstrap.servers={bootstrap_servers}",
            f"security.protocol={'SASL_SSL' if self.tls else 'SASL_PLAINTEXT'}",
            "sasl.mechanism=SCRAM-SHA-512",
            "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{username}" password="{password}";',
        ]
        if self.tls and self.cafile:
            lines += ["ssl.truststore.type=PEM", f"ssl.truststore.location={self.cafile}"]
        return "\n".join(lines) + "\n"


def read_client_config(path: Path | None) -> ClientConfig:
    """The file's configuration; none (PLAINTEXT) if there is no file. Read again when it changes."""
    if path is None or not path.is_file():
        return ClientConfig()
    return _parsed(path, path.stat().st_mtime)


@cache
def _parsed(path: Path, _modified: float) -> ClientConfig:
    props = {
        key.strip(): value.strip()
        for key, _, value in (line.partition("=") for line in path.read_text().splitlines())
        if value and not key.lstrip().startswith("#")
    }
    protocol = props.get("security.protocol", "PLAINTEXT")
    credentials: dict[str, str] = {}
    if protocol.startswith("SASL"):
        jaas = props["sasl.jaas.config"]
        credentials = {k: re.search(rf'{k}="([^"]*)"', jaas).group(1) for k in ("username", "password")}  # type: ignore[union-attr]
    return ClientConfig(
        protocol=protocol,
        mechanism=props.get("sasl.mechanism") if credentials else None,
        cafile=props.get("ssl.truststore.location"),
        bootstrap=props.get("bootstrap.servers"),
        **credentials,
    )


def _context(cafile: str | None) -> ssl.SSLContext:
    """Verifies the broker's certificate and host name against these CAs (else the system's)."""
    return _context_of(cafile, Path(cafile).stat().st_mtime if cafile else 0.0)


@cache
def _context_of(cafile: str | None, _modified: float) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cafile)
