"""The only module that reads the environment: every `HLFSYNC_*` setting, validated at start.

A bad value must stop a command with one line naming the setting (`describe_error`), never a
traceback. Secrets are `SecretStr`, so they print as `**********` wherever a setting is shown.
"""

from __future__ import annotations

import ipaddress
import os
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import platformdirs
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hlfsync.core.errors import ConfigError

PREFIX = "HLFSYNC_"

PositiveSeconds = Annotated[float, Field(gt=0, le=86_400)]


def _http_url(value: str | None, *, name: str) -> str | None:
    if value is None or value == "":
        return None
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        # Not the value itself: a URL can carry a key (user info, `?code=`, a webhook's path).
        raise ValueError(
            f"not an http(s) URL (scheme {parts.scheme or 'missing'},"
            f" host {parts.hostname or 'missing'})"
        )
    return value.rstrip("/")


def parse_trusted(value: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] | None:
    """The networks in a comma-separated list of addresses and CIDRs; None for `*` (any peer)."""
    entries = [entry.strip() for entry in value.split(",") if entry.strip()]
    if entries == ["*"]:
        return None
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or network") from None
    return tuple(networks)


class Settings(BaseSettings):
    """hlfsync's configuration. Field names are the variable names without the prefix."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )

    # Database
    database_url: str | None = None
    data_dir: Path = Field(default_factory=lambda: Path(platformdirs.user_data_dir("hlfsync")))
    db_pool_size: int = Field(default=10, ge=1, le=200)

    # Dynamics
    dynamics_contract: Literal["dataverse-v9", "webhook-v1"] = "dataverse-v9"
    dynamics_url: str | None = None
    dynamics_tenant_id: str | None = None
    dynamics_client_id: str | None = None
    dynamics_client_secret: SecretStr | None = None
    dynamics_authority: str | None = None
    dynamics_entity_set: str = Field(default="contacts", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    dynamics_listing_field: str = Field(
        default="hlf_listedonwebsite", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$"
    )
    dynamics_timeout: PositiveSeconds = 10.0
    dynamics_page_size: int = Field(default=5000, ge=1, le=5000)
    dynamics_batch_size: int = Field(default=100, ge=1, le=1000)
    dynamics_webhook_secret: SecretStr | None = None
    dynamics_ca_bundle: Path | None = None
    # Contract drift and alternate keys (issue 14): a Dataverse alternate key of the contact and
    # the peer_mentors column feeding it, for mentors without a dynamics_contact_id.
    dynamics_alternate_key: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    dynamics_alternate_key_column: str | None = Field(default=None, pattern=r"^[a-z_][a-z0-9_]*$")

    # Sync engine
    sync_enabled: bool = True
    retry_max_retries: int = Field(default=3, ge=0, le=50)
    retry_base_delay: PositiveSeconds = 2.0
    retry_multiplier: float = Field(default=2.0, ge=1.0, le=10.0)
    retry_max_delay: PositiveSeconds | None = None
    retry_jitter: float = Field(default=0.0, ge=0.0, le=1.0)
    breaker_failure_threshold: int = Field(default=3, ge=1, le=1000)
    breaker_cooldown: PositiveSeconds = 60.0
    worker_concurrency: int = Field(default=16, ge=1, le=500)
    worker_lease: PositiveSeconds = 60.0
    worker_poll_interval: PositiveSeconds = 5.0

    # Push delivery
    fcm_project_id: str | None = None
    fcm_credentials: Path | None = None
    fcm_endpoint: str = "https://fcm.googleapis.com"
    fcm_token_uri: str | None = None

    # --- Operators' channel (issue 17, alerts): webhook and/or e-mail, independent of FCM ---
    operator_webhook_url: SecretStr | None = None  # a Teams/Slack incoming webhook: holds a key
    operator_smtp_host: str | None = None
    operator_smtp_port: int = Field(default=587, ge=1, le=65535)
    operator_smtp_security: Literal["starttls", "ssl", "none"] = "starttls"
    operator_smtp_username: str | None = None
    operator_smtp_password: SecretStr | None = None
    operator_smtp_from: str | None = None
    operator_smtp_to: str | None = None  # comma-separated addresses
    operator_timeout: PositiveSeconds = 10.0
    # --- end of the operators' channel block ---

    # API
    jwt_secret: SecretStr | None = None
    jwt_audience: str = "authenticated"
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    public_url: str | None = None

    # Security (issue 15): where the service is reached, whom to believe about it, how much a
    # request may carry, how long a sign-in lasts.
    trusted_proxies: str = ""
    max_header_bytes: int = Field(default=32_768, ge=1_024, le=1_048_576)
    max_headers: int = Field(default=100, ge=16, le=10_000)
    max_body_bytes: int = Field(default=1_048_576, ge=1_024, le=1_073_741_824)
    session_ttl: PositiveSeconds = 8 * 3600.0
    sign_in_code_ttl: float = Field(default=300.0, gt=0, le=3600)

    # Scheduling
    timezone: str = "Europe/Oslo"
    expiry_schedule: str = "0 2 * * *"
    reconcile_schedule: str = "30 2 * * *"
    health_schedule: str = "*/5 * * * *"

    # Latency (issue 13): the worker's loop-lag probe and its own /metrics
    worker_metrics_port: int | None = Field(default=None, ge=0, le=65535)
    worker_metrics_host: str = "127.0.0.1"
    loop_lag_interval: float = Field(default=0.02, ge=0.001, le=10.0)
    # Nice steps between the live loop's thread and the background's (Linux); 0: the same.
    worker_bulk_nice: int = Field(default=10, ge=0, le=19)

    # Logging
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # auto: rendered for a person on a terminal, JSON lines when stderr is a file or a pipe
    log_format: Literal["auto", "json", "console"] = "auto"

    @field_validator("*", mode="before")
    @classmethod
    def _utf8(cls, value: object) -> object:
        # The environment may hold bytes that are not UTF-8 (Python keeps them as surrogates):
        # refuse them here, by name, rather than fail later inside a driver with a traceback.
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("not valid UTF-8 text") from None
        return value

    @field_validator("dynamics_url", "dynamics_authority", "public_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        return _http_url(value, name="url")

    @field_validator("public_url")
    @classmethod
    def _check_public_origin(cls, value: str | None) -> str | None:
        # An origin only: links and cookies are built under it from the root.
        if value is not None and urlsplit(value).path not in ("", "/"):
            raise ValueError("must be an origin (scheme://host[:port]) without a path")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_trusted_proxies(cls, value: str) -> str:
        parse_trusted(value)  # ValueError names the entry that is not an address
        return value

    @field_validator("fcm_endpoint")
    @classmethod
    def _check_fcm_endpoint(cls, value: str) -> str:
        checked = _http_url(value, name="fcm_endpoint")
        if checked is None:
            raise ValueError("must not be empty")
        return checked

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if urlsplit(value).scheme not in {"postgres", "postgresql"}:
            raise ValueError("must start with postgresql://")
        return value

    @field_validator("operator_webhook_url")
    @classmethod
    def _check_operator_webhook(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        return SecretStr(_http_url(value.get_secret_value(), name="operator_webhook_url") or "")

    @field_validator("operator_smtp_to")
    @classmethod
    def _check_operator_recipients(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        addresses = [part.strip() for part in value.split(",") if part.strip()]
        bad = [part for part in addresses if "@" not in part or any(c.isspace() for c in part)]
        if bad:
            raise ValueError(f"not an e-mail address: {bad[0]!r}")
        return ",".join(addresses)

    @model_validator(mode="after")
    def _check_operator_smtp(self) -> Settings:
        if self.operator_smtp_host and not (self.operator_smtp_from and self.operator_smtp_to):
            raise ValueError(
                "HLFSYNC_OPERATOR_SMTP_FROM and HLFSYNC_OPERATOR_SMTP_TO are required when "
                "HLFSYNC_OPERATOR_SMTP_HOST is set"
            )
        if self.operator_smtp_password is not None and not self.operator_smtp_username:
            raise ValueError(
                "HLFSYNC_OPERATOR_SMTP_USERNAME is required with HLFSYNC_OPERATOR_SMTP_PASSWORD"
            )
        return self

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("expiry_schedule", "reconcile_schedule", "health_schedule")
    @classmethod
    def _check_cron(cls, value: str) -> str:
        from croniter import croniter

        if not croniter.is_valid(value):
            raise ValueError(f"not a cron expression: {value!r}")
        return value

    @model_validator(mode="after")
    def _check_retry_policy(self) -> Settings:
        from hlfsync.core import retry

        try:
            retry.RetryPolicy.from_settings(
                self.retry_max_retries, self.retry_base_delay, self.retry_multiplier,
                self.retry_max_delay, self.retry_jitter,
            )  # fmt: skip
        except ValueError as exc:
            raise ValueError(f"HLFSYNC_RETRY_*: {exc}") from exc
        return self

    @model_validator(mode="after")
    def _check_alternate_key(self) -> Settings:
        key, column = self.dynamics_alternate_key, self.dynamics_alternate_key_column
        if (key is None) != (column is None):
            missing = "ALTERNATE_KEY_COLUMN" if column is None else "ALTERNATE_KEY"
            raise ValueError(
                f"HLFSYNC_DYNAMICS_{missing} is required with the other alternate-key setting"
            )
        if key is not None and self.dynamics_contract == "webhook-v1":
            raise ValueError("HLFSYNC_DYNAMICS_ALTERNATE_KEY needs dataverse-v9, not webhook-v1")
        return self

    @model_validator(mode="after")
    def _check_fcm(self) -> Settings:
        if self.fcm_credentials is not None and not self.fcm_project_id:
            raise ValueError(
                "HLFSYNC_FCM_PROJECT_ID is required when HLFSYNC_FCM_CREDENTIALS is set"
            )
        return self

    # Derived values, so callers never repeat the arithmetic.
    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.worker_lease)

    @property
    def fcm_enabled(self) -> bool:
        return bool(self.fcm_project_id and self.fcm_credentials)

    def authority(self) -> str | None:
        """The Entra ID authority: the explicit setting, else the public cloud's for the tenant."""
        if self.dynamics_authority:
            return self.dynamics_authority
        if self.dynamics_tenant_id:
            return f"https://login.microsoftonline.com/{self.dynamics_tenant_id}"
        return None


def describe_error(exc: ValidationError) -> str:
    """One line naming the first bad setting as the user spells it, and what is wrong with it."""
    first = exc.errors()[0]
    loc = first.get("loc") or ()
    name = f" {PREFIX}{str(loc[0]).upper()}" if loc else "s"
    message = str(first.get("msg", "invalid value"))
    message = message.removeprefix("Value error, ")
    extra = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"invalid setting{name}: {message}{extra}"


DEMO_ENV = Path("sandbox") / "demo.env"
DEMO_PID = Path("sandbox") / "demo.pid"
DEMO_JWT_SECRET = Path("demo-jwt-secret")


def with_running_demo(settings: Settings) -> Settings:
    """The settings pointed at a running demo's sandbox, when nothing else names a Dynamics.

    Only with the embedded database (no HLFSYNC_DATABASE_URL) and no HLFSYNC_DYNAMICS_URL: that
    is a developer's machine where `hlfsync demo` runs in another terminal, and commands such as
    `seed`, `health` or `reconcile` should talk to the demo's sandbox as the demo's worker does.
    A production configuration always names its database, so it is never affected.
    """
    if settings.database_url is not None or settings.dynamics_url is not None:
        return settings
    env_file, pid_file = settings.data_dir / DEMO_ENV, settings.data_dir / DEMO_PID
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, 0)
        lines = env_file.read_text(encoding="utf-8").splitlines()
    except (OSError, ValueError):
        return settings  # no demo, a stale pid file or an unreadable env file: as configured
    values = {
        key.removeprefix(PREFIX).lower(): value
        for key, _, value in (line.partition("=") for line in lines)
        if key.startswith(PREFIX)
    }
    pointed = Settings(**values).model_dump(include=set(values))  # type: ignore[arg-type]
    secret_file = settings.data_dir / DEMO_JWT_SECRET
    if settings.jwt_secret is None and secret_file.exists():
        pointed["jwt_secret"] = SecretStr(secret_file.read_text(encoding="utf-8").strip())
    return settings.model_copy(update=pointed)


def load(**overrides: object) -> Settings:
    """Read the environment and `.env`; command-line options come in as overrides and win."""
    clean = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**clean)  # type: ignore[arg-type]
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"invalid settings file .env: not UTF-8 text (byte {exc.object[exc.start]:#04x}"
            f" at offset {exc.start})"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the settings file .env: {exc.strerror or exc}") from None
