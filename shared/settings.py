"""Settings read from the environment (pydantic-settings); no hosts, ports or secrets in code.

Platform-wide settings have plain names (KAFKA_BOOTSTRAP_SERVERS, MONGODB_URL, IDO_OIN, ...);
a service's own settings carry its prefix (INTAKE_PORT, ROUTING_DATABASE, ...).
"""

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class InfraSettings(BaseSettings):
    """Where the broker and the database are. Shared by services, the CLI and the tests."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", validation_alias="KAFKA_BOOTSTRAP_SERVERS")
    mongodb_url: str = Field("mongodb://127.0.0.1:27017", validation_alias="MONGODB_URL")
    # Partitions per topic; the key (CloudEvent subject) keeps one entity's events in order.
    kafka_topic_partitions: int = Field(3, ge=1, validation_alias="IDO_TOPIC_PARTITIONS")
    kafka_replication_factor: int = Field(1, ge=1, validation_alias="IDO_TOPIC_REPLICATION")
    # Directory of Ed25519 keys: *.pub verify credentials (rotation = add a key), *.key sign them.
    credential_keys_dir: Path = Field(REPO_ROOT / ".local" / "credentials", validation_alias="IDO_CREDENTIAL_KEYS_DIR")
    # Organisation identification number in the CloudEvent source URN (NL GOV profile).
    oin: str = Field("00000001003214345000", pattern=r"^[0-9]{20}$", validation_alias="IDO_OIN")


class ServiceSettings(InfraSettings):
    """Settings every service has. A service subclasses it with its name, port and env prefix."""

    service_name: str
    host: str = "127.0.0.1"
    port: int
    # Base URL under which this service is reachable by others (dataref and schema links).
    public_base_url: str = ""
    database: str = ""
    log_level: str = Field("INFO", validation_alias="LOG_LEVEL")
    # Consumer: attempts for a failing event before it is dead-lettered, and the first backoff.
    consumer_max_attempts: int = Field(4, ge=1, validation_alias="IDO_CONSUMER_MAX_ATTEMPTS")
    consumer_backoff_seconds: float = Field(0.2, ge=0, validation_alias="IDO_CONSUMER_BACKOFF_SECONDS")
    # Per credential and service instance: average requests per second, and the burst allowed.
    rate_limit_per_second: float = Field(20.0, gt=0, validation_alias="IDO_RATE_LIMIT_PER_SECOND")
    rate_limit_burst: int = Field(100, ge=1, validation_alias="IDO_RATE_LIMIT_BURST")
    # How long the ids of processed events are kept to recognise a re-delivery.
    processed_retention_hours: float = Field(24.0, gt=0, validation_alias="IDO_PROCESSED_RETENTION_HOURS")
    # Outbox relay: how often it scans for events left unpublished (by a crash or a failed
    # publish); events are normally published right after their write.
    outbox_sweep_seconds: float = Field(30.0, gt=0, validation_alias="IDO_OUTBOX_SWEEP_SECONDS")

    def model_post_init(self, _context: object) -> None:
        self.database = self.database or f"ido_{self.service_name}"
        self.public_base_url = (self.public_base_url or f"http://{self.host}:{self.port}").rstrip("/")


def service_settings(name: str) -> SettingsConfigDict:
    """Config for a service's settings class: env prefix from its name (INTAKE_PORT, ...)."""
    return SettingsConfigDict(env_prefix=f"{name.upper()}_", extra="ignore", populate_by_name=True)
