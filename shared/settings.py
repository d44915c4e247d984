"""Settings read from the environment (pydantic-settings); no hosts, ports or secrets in code.

Platform-wide settings have plain names (KAFKA_BOOTSTRAP_SERVERS, PG_HOST, IDO_OIN, ...);
a service's own settings carry its prefix (INTAKE_PORT, ROUTING_DATABASE_URL, ...).
Database passwords are never settings: they live in a PostgreSQL password file (PGPASSFILE,
written by the local runner and `ido db setup`), or in a *_DATABASE_URL given by the operator.
"""

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
# The services, each with its own database and login role (ido_<name>).
SERVICES = ("intake", "routing", "courses", "subsidy", "reporting")


class InfraSettings(BaseSettings):
    """Where the broker and the database are. Shared by services, the CLI and the tests."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", validation_alias="KAFKA_BOOTSTRAP_SERVERS")
    # How Kafka clients authenticate: a Kafka client configuration file (security.protocol,
    # sasl.mechanism, sasl.jaas.config). Default: the local broker's administrator, if any.
    kafka_client_config: Path | None = Field(
        REPO_ROOT / ".local" / "kafka" / "clients" / "admin.properties", validation_alias="KAFKA_CLIENT_CONFIG"
    )
    # How often clients refresh the cluster's metadata: a pattern subscription (routing's
    # webhooks, on every organisation's referral topic) sees a new partner's topic within this.
    kafka_metadata_max_age_ms: int = Field(10_000, ge=1000, validation_alias="KAFKA_METADATA_MAX_AGE_MS")
    # Where `ido topics apply` writes each service principal's client configuration
    # (ido-<service>.properties), which the local runner hands to that service.
    kafka_clients_dir: Path = Field(
        REPO_ROOT / ".local" / "kafka" / "clients", validation_alias="IDO_KAFKA_CLIENTS_DIR"
    )
    pg_host: str = Field("127.0.0.1", validation_alias="PG_HOST")
    pg_port: int = Field(5432, validation_alias="PG_PORT")
    pgpassfile: Path = Field(REPO_ROOT / ".local" / "postgres" / "pgpass", validation_alias="PGPASSFILE")
    # The administrator creates the services' roles and databases (`ido db setup`) and nothing else.
    pg_admin_url: str = Field("", validation_alias="PG_ADMIN_URL")
    # Partitions per topic; the key (CloudEvent subject) keeps one entity's events in order.
    # The partitions bound how many instances of a consumer share the work: 6 splits evenly
    # over 1, 2, 3 or 6 instances. Set before a topic exists; later changes move keys.
    kafka_topic_partitions: int = Field(6, ge=1, validation_alias="IDO_TOPIC_PARTITIONS")
    kafka_replication_factor: int = Field(1, ge=1, validation_alias="IDO_TOPIC_REPLICATION")
    # With acks=all, a write is stored on at least this many replicas (2 of 3 in production).
    kafka_min_insync_replicas: int = Field(1, ge=1, validation_alias="IDO_TOPIC_MIN_INSYNC_REPLICAS")
    # Directory of Ed25519 keys: *.pub verify credentials (rotation = add a key), *.key sign them.
    credential_keys_dir: Path = Field(REPO_ROOT / ".local" / "credentials", validation_alias="IDO_CREDENTIAL_KEYS_DIR")
    # How long a credential issued by `ido keys create` (or a service for itself) is valid.
    credential_days: int = Field(365, ge=1, le=3650, validation_alias="IDO_CREDENTIAL_DAYS")
    # Organisation identification number in the CloudEvent source URN (NL GOV profile).
    oin: str = Field("00000001003214345000", pattern=r"^[0-9]{20}$", validation_alias="IDO_OIN")

    def model_post_init(self, _context: object) -> None:
        self.pg_admin_url = self.pg_admin_url or f"postgresql://ido_admin@{self.pg_host}:{self.pg_port}/postgres"

    def service_database_url(self, service: str) -> str:
        return f"postgresql://ido_{service}@{self.pg_host}:{self.pg_port}/ido_{service}"


class ServiceSettings(InfraSettings):
    """Settings every service has. A service subclasses it with its name, port and env prefix."""

    service_name: str
    host: str = "127.0.0.1"
    port: int
    # Base URL under which this service is reachable by others (dataref and schema links).
    public_base_url: str = ""
    # Its own database and login role; the password comes from PGPASSFILE unless the URL has one.
    database_url: str = ""
    # Its Kafka consumer group (default ido-<service>); the group ACL allows any name with that
    # prefix. A second, separate copy of a service (a test) takes a group of its own.
    consumer_group: str = ""
    db_pool_size: int = Field(10, ge=2, validation_alias="IDO_DB_POOL_SIZE")
    log_level: str = Field("INFO", validation_alias="LOG_LEVEL")
    # Consumer: attempts for a failing event before it is dead-lettered, and the first backoff.
    consumer_max_attempts: int = Field(4, ge=1, validation_alias="IDO_CONSUMER_MAX_ATTEMPTS")
    consumer_backoff_seconds: float = Field(0.2, ge=0, validation_alias="IDO_CONSUMER_BACKOFF_SECONDS")
    # Records read at once, and how many entities' events are handled side by side (each in its
    # own transaction, so at most this many pool connections; one entity's events stay in order).
    consumer_batch_size: int = Field(200, ge=1, validation_alias="IDO_CONSUMER_BATCH_SIZE")
    # How long a poll waits for records: a record arriving while idle waits at most about this.
    consumer_batch_wait_ms: int = Field(10, ge=1, validation_alias="IDO_CONSUMER_BATCH_WAIT_MS")
    # Offsets are committed after a handled batch at most this often (0: after every batch).
    consumer_commit_seconds: float = Field(1.0, ge=0, validation_alias="IDO_CONSUMER_COMMIT_SECONDS")
    consumer_concurrency: int = Field(8, ge=1, validation_alias="IDO_CONSUMER_CONCURRENCY")
    # While the database or the broker is unavailable, a consumer holds its batch and tries again
    # after at most this long (backing off from IDO_CONSUMER_BACKOFF_SECONDS).
    consumer_max_backoff_seconds: float = Field(5.0, gt=0, validation_alias="IDO_CONSUMER_MAX_BACKOFF_SECONDS")
    # On SIGTERM: how long readiness answers 503 before the server stops taking connections
    # (so a load balancer stops sending), and how long the whole shutdown may take.
    shutdown_drain_seconds: float = Field(1.0, ge=0, validation_alias="IDO_SHUTDOWN_DRAIN_SECONDS")
    shutdown_seconds: float = Field(10.0, gt=0, validation_alias="IDO_SHUTDOWN_SECONDS")
    # How long a request waits for a database connection before it is answered 503.
    db_acquire_timeout_seconds: float = Field(2.0, gt=0, validation_alias="IDO_DB_ACQUIRE_TIMEOUT_SECONDS")
    # Per credential and service instance: average requests per second, and the burst allowed.
    rate_limit_per_second: float = Field(20.0, gt=0, validation_alias="IDO_RATE_LIMIT_PER_SECOND")
    rate_limit_burst: int = Field(100, ge=1, validation_alias="IDO_RATE_LIMIT_BURST")
    # How long the ids of processed events are kept to recognise a re-delivery: as long as
    # Kafka keeps the records (7 days by default), so no re-delivery can outlive its record.
    processed_retention_hours: float = Field(168.0, gt=0, validation_alias="IDO_PROCESSED_RETENTION_HOURS")
    # Outbox relay: a commit wakes it at once (NOTIFY); this is only the safety-net poll, and
    # how often a standby instance tries to take over from a relay that died.
    outbox_sweep_seconds: float = Field(1.0, gt=0, validation_alias="IDO_OUTBOX_SWEEP_SECONDS")
    outbox_batch_size: int = Field(500, ge=1, validation_alias="IDO_OUTBOX_BATCH_SIZE")
    # How often the outbox backlog (pending rows, oldest age) is measured for /metrics.
    metrics_seconds: float = Field(5.0, gt=0, validation_alias="IDO_METRICS_SECONDS")
    # Browser pages on other origins that may call this API (CORS), comma-separated and exact,
    # e.g. intake's desk calling courses: "http://127.0.0.1:8001". Empty: no cross-origin calls.
    cors_origins: str = Field("", validation_alias="IDO_CORS_ORIGINS")

    @property
    def cors_allow_list(self) -> list[str]:
        return [origin.strip().rstrip("/") for origin in self.cors_origins.split(",") if origin.strip()]

    def model_post_init(self, _context: object) -> None:
        super().model_post_init(_context)
        self.database_url = self.database_url or self.service_database_url(self.service_name)
        self.public_base_url = (self.public_base_url or f"http://{self.host}:{self.port}").rstrip("/")


def service_settings(name: str) -> SettingsConfigDict:
    """Config for a service's settings class: env prefix from its name (INTAKE_PORT, ...)."""
    return SettingsConfigDict(env_prefix=f"{name.upper()}_", extra="ignore", populate_by_name=True)
