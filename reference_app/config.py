"""Settings for a registry deployment, read from CONTACTPOINT_* environment variables."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field, IPvAnyNetwork, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from reference_app.kit.controls import Control


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"
    TEST = "test"


class LimitsBackend(StrEnum):
    DATABASE = "database"
    MEMORY = "memory"
    REDIS = "redis"


class Settings(BaseSettings):
    """Configuration of one registry instance.

    Secure by default: the environment is production unless said otherwise, and production refuses
    to start without real key material (see ``reference_app.kit.keys``).
    """

    model_config = SettingsConfigDict(env_prefix="CONTACTPOINT_", extra="ignore")

    environment: Environment = Environment.PRODUCTION
    database_url: str = "sqlite:///./contactpoint.db"
    # Pool sizing for PostgreSQL; SQLite ignores it.
    database_pool_size: int = Field(default=10, ge=1, le=200)
    keys_file: Path | None = None

    # Bounded waits (docs/faults.md): a store that is down or stalled turns into 503s within
    # seconds instead of requests that hang. PostgreSQL's connect_timeout (whole seconds) and
    # statement_timeout (the serving process only; 0: none, SQLite's busy wait), the wait for a
    # pooled connection, for an admission slot, and for the whole answer.
    database_connect_timeout_seconds: int = Field(default=3, ge=1, le=60)
    database_statement_timeout_seconds: float = Field(default=5.0, ge=0, le=3600)
    database_pool_timeout_seconds: float = Field(default=3.0, gt=0, le=300)
    admission_wait_seconds: float = Field(default=3.0, gt=0, le=300)
    request_deadline_seconds: float = Field(default=10.0, gt=0, le=3600)
    # A request body still arriving after this long is refused 408 and its connection closed.
    request_body_timeout_seconds: float = Field(default=10.0, gt=0, le=3600)
    # Redis connect and read timeouts (one retry on a fresh connection).
    limits_redis_timeout_seconds: float = Field(default=1.0, gt=0, le=60)
    # /readyz turns not ready when the SQLite database's filesystem has less free space than this.
    ready_min_free_mib: int = Field(default=16, ge=0)
    # The server (contactpoint serve): idle keep-alive connections are closed after this long;
    # at SIGTERM, requests still running after shutdown_grace_seconds are cancelled.
    keep_alive_seconds: int = Field(default=5, ge=1, le=300)
    shutdown_grace_seconds: int = Field(default=10, ge=1, le=600)

    token_ttl_seconds: int = Field(default=900, ge=30, le=3600)
    token_audience: str = "contactpoint:api"  # noqa: S105 (a name, not a secret)
    token_issuer: str = "contactpoint"  # noqa: S105

    # OWASP's Argon2id minimum is m=19 MiB, t=2; production uses more.
    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_memory_kib: int = Field(default=65536, ge=1024)
    argon2_parallelism: int = Field(default=2, ge=1)
    # Password hashing runs in at most this many lanes per worker (reference_app.kit.gate);
    # at most login_queue requests wait for one, each at most login_queue_wait_seconds, and
    # the rest answer 503 login_busy. One lane leaves the other core of a 2-core host to views.
    login_hash_concurrency: int = Field(default=1, ge=1, le=64)
    login_queue: int = Field(default=32, ge=0, le=10000)
    login_queue_wait_seconds: float = Field(default=10.0, gt=0, le=300)

    login_max_failures_account: int = Field(default=5, ge=1)
    login_max_failures_source: int = Field(default=20, ge=1)
    login_window_seconds: int = Field(default=900, ge=1)
    login_lockout_seconds: int = Field(default=900, ge=1)
    # The first lock-out of an (account, source) pair; each further one doubles, up to
    # login_lockout_seconds.
    login_backoff_seconds: int = Field(default=30, ge=1)
    # Failed logins to one account from any sources in a window that alert its LA's team: a
    # guesser spread over many addresses meets no per-source limit, and locking the account
    # would hand anyone a denial of service, so people are told instead.
    login_guessing_alert_failures: int = Field(default=20, ge=2)

    search_result_cap: int = Field(default=10, ge=1, le=50)
    max_request_bytes: int = Field(default=65536, ge=1024)
    max_json_depth: int = Field(default=16, ge=2, le=256)

    # Limits and harvesting detection (reference_app/limits). The store must be shared by every
    # worker: the database (default) or Redis; memory is for a single process only.
    limits_store: LimitsBackend = LimitsBackend.DATABASE
    limits_redis_url: str | None = None
    # Multiplies every per-user quota and harvesting threshold: a deployment's tuning knob.
    limits_scale: float = Field(default=1.0, gt=0, le=1000)
    limit_source_per_minute: int = Field(default=1200, ge=1)
    harvest_block_seconds: int = Field(default=900, ge=1)
    # Distinct children (viewed or returned by searches) a day for everyone in one organisation
    # and in one local authority: a floor, plus an allowance per established colleague (an active
    # account older than a week), so a large team is not held to a small one's figure and fresh
    # throwaway accounts add nothing. Scaled with ``limits_scale``.
    limit_organisation_children_per_day: int = Field(default=150, ge=1)
    limit_local_authority_children_per_day: int = Field(default=2000, ge=1)
    limit_children_per_colleague: int = Field(default=20, ge=0)

    # Insider-browsing detection over the sealed audit log (reference_app/detection).
    detector_enabled: bool = True
    detector_interval_seconds: float = Field(default=1.0, gt=0)
    snooping_alert_score: int = Field(default=60, ge=1)
    snooping_suspend_score: int = Field(default=150, ge=1)
    working_hours_timezone: str = "Europe/London"
    # Working days from Monday (5: Monday to Friday); views outside them score as out of hours.
    working_days: int = Field(default=5, ge=1, le=7)

    # Involvement claims (reference_app/services): how many a practitioner may make a day, and
    # how many days a confirmed involvement is young (its views still scored as uninvolved).
    involvement_claims_per_day: int = Field(default=50, ge=1)
    involvement_settling_days: int = Field(default=7, ge=0)
    # How far back a new involvement (or a CAF assessment) may be dated when it is registered:
    # a claim dated years ago would reach into the child's whole history.
    involvement_backdate_days: int = Field(default=90, ge=0, le=3650)
    # How old a child may be when first registered (archived at 18, purged six years on).
    registration_max_age_years: int = Field(default=25, ge=1, le=120)

    # Bulk exports: rows in one export's scope, how long a request or an approval lives, and how
    # long a download link works.
    export_max_rows: int = Field(default=5000, ge=1)
    export_ttl_seconds: int = Field(default=86400, ge=60)
    export_link_ttl_seconds: int = Field(default=300, ge=10, le=3600)

    # A new account's enrolment code lives this long; an export approver's account and role must
    # be older than this many days.
    enrolment_code_ttl_hours: int = Field(default=72, ge=1, le=720)
    approver_min_account_age_days: int = Field(default=7, ge=0)

    audit_sealer_enabled: bool = True
    audit_seal_interval_seconds: float = Field(default=1.0, gt=0)
    audit_seal_batch: int = Field(default=20000, ge=1)
    audit_witness_path: Path | None = None
    # Refusals recorded one by one per caller (user, or source when unauthenticated) a minute;
    # past it every this-many-th refusal is recorded as a summary of the ones in between.
    refusal_audit_per_minute: int = Field(default=30, ge=1)

    # Reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (addresses or
    # networks, e.g. '["10.0.0.5", "10.1.0.0/16"]'). None by default: the source of a request is
    # its TCP peer, since any client can write a forwarded header.
    trusted_proxies: tuple[IPvAnyNetwork, ...] = ()
    # Strict-Transport-Security goes on answers served over https (directly or, from a trusted
    # proxy, by X-Forwarded-Proto); set this when TLS ends at a proxy that does not say so.
    hsts_always: bool = False
    # Serve the OpenAPI document without a login (development builds only; elsewhere ignored).
    openapi_public: bool = False

    # PostgreSQL role the application connects as; `db upgrade` grants it least privilege.
    database_app_role: str | None = None

    # Controls switched off to prove the harness notices (development builds only).
    disabled_controls: frozenset[Control] = frozenset()

    @model_validator(mode="after")
    def _redis_needs_a_url(self) -> Settings:
        if self.limits_store is LimitsBackend.REDIS and not self.limits_redis_url:
            raise ValueError("limits_store=redis needs limits_redis_url")
        return self

    @model_validator(mode="after")
    def _controls_off_only_in_development(self) -> Settings:
        if self.disabled_controls and self.environment is not Environment.DEVELOPMENT:
            raise ValueError(
                "controls can be switched off only in a development build "
                f"(environment is {self.environment.value}; disabled: "
                f"{', '.join(sorted(self.disabled_controls))})"
            )
        return self
