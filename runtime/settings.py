"""The one settings object: environment variables prefixed SUBLEDGER_, read once, frozen."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Literal
from uuid import UUID

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from processors.core.config import FoldConfig
from schemas.enums import SharingPolicy


class BrokerFlavor(StrEnum):
    """Which Kafka-API broker the clients talk to; its quirks are handled in one place."""

    TANSU = "tansu"
    KAFKA = "kafka"


class TableStore(StrEnum):
    """Where a worker keeps its tables: in memory, recovered from the changelogs at every
    start, or on disk (RocksDB), recovered from where the disk left off."""

    MEMORY = "memory"
    ROCKSDB = "rocksdb"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SUBLEDGER_", frozen=True, extra="ignore")

    # None starts the embedded development broker.
    kafka_bootstrap: str | None = Field(
        default=None, validation_alias=AliasChoices("SUBLEDGER_KAFKA_BOOTSTRAP", "KAFKA_BOOTSTRAP")
    )
    broker_flavor: BrokerFlavor = BrokerFlavor.TANSU
    app_id: str = "subledger-processors"
    # Which generation of processor state and derived topics this process works with;
    # `subledger reprocess` builds a new one from the source topics beside the old.
    processor_version: int = Field(default=1, ge=1)
    # Prefixed to every topic name: isolates a test run or a replay on a shared broker.
    topic_prefix: str = ""
    # Records an agent takes at once (a record may be a pack of messages); a batch waits
    # at most `batch_within_seconds` to fill.
    batch_size: int = Field(default=1000, ge=1)
    batch_within_seconds: float = Field(default=0.02, gt=0)
    timer_interval_seconds: float = Field(default=0.5, gt=0)
    # The worker's tables; unset: on disk, or in memory beside the embedded broker (which
    # keeps nothing across runs). At most `cached_states` decoded states per table stay in
    # memory, the rest as bytes, in memory or on disk. On disk, each processor generation
    # has its own directory under `data_dir`, and RocksDB's block cache and memtables share
    # `rocksdb_memory_mb`.
    table_store: TableStore | None = None
    data_dir: Path = Path(".subledger/state")
    cached_states: int = Field(default=5_000, ge=100)
    rocksdb_memory_mb: int = Field(default=256, ge=16)
    # Where a worker, projector or dispatcher serves /health, /ready and /metrics
    # (Prometheus); unset serves none. The HTTP service serves them on its own port.
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    # A process is ready once it has recovered and at most this many records are left to
    # read on its partitions; 0 asks for nothing left, due wake-ups of the worker included.
    ready_lag: int = Field(default=1000, ge=0)
    # How long a process waits for the broker or the database, trying again with backoff
    # and not ready meanwhile, before it exits (status 1) for its supervisor: at start,
    # and for the worker's writes. (The projector, the dispatcher and the HTTP service,
    # once started, wait as long as it takes.)
    patience_seconds: float = Field(default=300.0, ge=0)
    # Logs as one JSON object per line (for collectors) or as text.
    log_format: Literal["text", "json"] = "text"
    # App Store: the app's identity and the root certificates chains must lead to (DER).
    apple_bundle_id: str | None = None
    apple_app_apple_id: int | None = None
    apple_environment: Literal["Production", "Sandbox", "Xcode", "LocalTesting"] = "Production"
    apple_root_certificates: tuple[Path, ...] = ()
    # Stripe webhook signing secrets (whsec_...); two while one is rotated.
    stripe_webhook_secrets: tuple[SecretStr, ...] = ()
    # A Stripe secret or restricted key that reads invoices: it places a refunded charge
    # whose invoice the event does not carry; another server for that API (the
    # simulator's stand-in, development only).
    stripe_api_key: SecretStr | None = None
    stripe_api_base: str | None = None
    # Google Play: the app's package; the push is authenticated by a shared secret in the
    # push URL (`?token=`) or else by its OIDC token for this audience and account.
    google_play_package: str | None = None
    google_push_secret: SecretStr | None = None
    google_push_audience: str | None = None
    google_push_service_account: str | None = None
    # Service-account key (JSON) for the Play Developer API.
    google_service_account_file: Path | None = None
    # Another server for the Play Developer API, called without credentials: the
    # simulator's stand-in (development only).
    google_play_api_endpoint: str | None = None
    ingress_host: str = "127.0.0.1"
    ingress_port: int = 8080
    # None starts (or joins) the embedded PostgreSQL whose data lives in `postgres_dir`.
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("SUBLEDGER_DATABASE_URL", "DATABASE_URL")
    )
    postgres_dir: Path = Path(".subledger/postgres")
    # Server-side API keys (`Authorization: Api-Key <key>`); none configured refuses every call.
    api_keys: tuple[SecretStr, ...] = ()
    # The app's id in server-side API answers (Adapty's `app_id`).
    api_app_id: UUID = UUID("5f1c3a52-8c4e-4d3b-9a51-2d1e0c7b9e10")
    # How long a write waits to see its effect in the read model before answering 202.
    read_your_writes_seconds: float = Field(default=5.0, gt=0)
    # The projector: records per read-model transaction.
    projection_batch_size: int = Field(default=2000, ge=1)
    # USD rates (units per dollar, JSON); the shipped table when unset.
    rates_file: Path | None = None
    # Fold rules of the app.
    sharing_policy: SharingPolicy = SharingPolicy.SHARED
    small_business: bool = False
    # The share of a Stripe payment Stripe keeps (its processing fee), for proceeds.
    stripe_fee_rate: Decimal = Field(default=Decimal(0), ge=0, lt=1)
    access_levels: frozenset[str] = frozenset({"premium"})
    # The HTTP service serves /docs and /redoc (from installed assets; off in production
    # if the API should not describe itself).
    api_docs: bool = True
    # The console (web pages under /console), and how long a sign-in lasts.
    console: bool = True
    console_session_seconds: int = Field(default=12 * 3600, ge=60)
    # Webhook endpoints may be on loopback, link-local or private addresses (development).
    webhook_private_addresses: bool = False
    # Request bodies larger than this are refused with 413.
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # How long an auto-renewing period stays active past its expiry awaiting the renewal.
    renewal_leeway_seconds: int = Field(default=3600, ge=0, le=7 * 86400)

    @property
    def processor_app_id(self) -> str:
        """The processors' consumer group and Faust app: one per processor version."""
        version = self.processor_version
        return self.app_id if version == 1 else f"{self.app_id}-v{version}"

    @property
    def tables_on_disk(self) -> bool:
        if self.table_store is not None:
            return self.table_store is TableStore.ROCKSDB
        return self.kafka_bootstrap is not None

    @property
    def table_dir(self) -> Path:
        """This processor generation's tables, apart from other prefixes' and versions'."""
        return self.data_dir.absolute() / f"{self.topic_prefix}{self.processor_app_id}"

    def fold_config(self) -> FoldConfig:
        return FoldConfig(
            sharing_policy=self.sharing_policy,
            small_business=self.small_business,
            stripe_fee_rate=self.stripe_fee_rate,
            access_levels=self.access_levels,
            renewal_leeway=timedelta(seconds=self.renewal_leeway_seconds),
        )
