"""Everything the sandbox remembers: contacts, credentials, issued tokens, logs, faults, settings.

Owns no HTTP. One `SandboxState` per server; it is read and changed on the server's event-loop
thread only (admin calls come in over HTTP too), so it takes no locks.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from hlfsync_sandbox import contacts, faults, keys, requestlog

Audience = Literal["entra", "google"]
TokenCheck = Literal["ok", "unknown", "expired", "wrong_audience"]

DEFAULT_TENANT_ID = "8c5f1f1a-0000-4000-8000-00000000a11f"
DEFAULT_CLIENT_ID = "5b0c2c1e-0000-4000-8000-0000000c11e7"
DEFAULT_FCM_PROJECT = "hlfsync-sandbox"


@dataclass(slots=True)
class IssuedToken:
    audience: Audience
    expires_at: float
    generation: int  # the Entra credential generation it was issued under
    scopes: frozenset[str] = frozenset()


class TokenStore:
    """Opaque bearer tokens: random strings looked up in a dict, so checking one costs nothing."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._tokens: dict[str, IssuedToken] = {}
        self.issued: Counter[str] = Counter()

    def issue(
        self,
        audience: Audience,
        ttl_s: float,
        generation: int = 0,
        scopes: frozenset[str] = frozenset(),
    ) -> str:
        prefix = "sbx-entra-" if audience == "entra" else "sbx-google-"
        token = prefix + secrets.token_urlsafe(32)
        self._tokens[token] = IssuedToken(audience, self._clock() + ttl_s, generation, scopes)
        self.issued[audience] += 1
        return token

    def get(self, token: str) -> IssuedToken | None:
        return self._tokens.get(token)

    def check(self, token: str, audience: Audience) -> TokenCheck:
        issued = self._tokens.get(token)
        if issued is None:
            return "unknown"
        if issued.audience != audience:
            return "wrong_audience"
        if issued.expires_at <= self._clock():
            return "expired"
        return "ok"

    def revoke(self, audience: Audience, keep_generation: int | None = None) -> int:
        doomed = [
            token
            for token, issued in self._tokens.items()
            if issued.audience == audience and issued.generation != keep_generation
        ]
        for token in doomed:
            del self._tokens[token]
        return len(doomed)

    def expire(self, audience: Audience | None = None) -> int:
        now = self._clock()
        count = 0
        for issued in self._tokens.values():
            if audience is None or issued.audience == audience:
                issued.expires_at = min(issued.expires_at, now)
                count += 1
        return count


@dataclass(slots=True)
class Credentials:
    """What the token endpoint and webhook receiver accept right now."""

    tenant_id: str
    client_id: str
    client_secret: str
    webhook_secret: str
    generation: int = 0  # bumped by every rotation; tokens of older generations are revoked


@dataclass(slots=True)
class SandboxSettings:
    """Names that must agree with hlfsync's settings, and the token lifetime."""

    entity_set: str = "contacts"
    listing_field: str = "hlf_listedonwebsite"
    token_ttl_s: float = 3600.0
    # Contact attributes defined as alternate keys: `contacts(<key>='<value>')` addresses a row.
    alternate_keys: tuple[str, ...] = ("hlf_mentornumber",)


@dataclass(slots=True)
class FcmMessage:
    token: str
    data: dict[str, str]
    at: float
    name: str
    message: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "data": self.data,
            "at": self.at,
            "name": self.name,
            "message": self.message,
        }


class SandboxState:
    """The sandbox's whole world. `reset()` returns it to how it was built (keys and ids stay)."""

    def __init__(
        self,
        *,
        tenant_id: str = DEFAULT_TENANT_ID,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str | None = None,
        webhook_secret: str | None = None,
        fcm_project_id: str = DEFAULT_FCM_PROJECT,
        settings: SandboxSettings | None = None,
        service_account: keys.ServiceAccount | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self._initial_credentials = Credentials(
            tenant_id=tenant_id,
            client_id=client_id,
            client_secret=client_secret or secrets.token_urlsafe(24),
            webhook_secret=webhook_secret or secrets.token_urlsafe(24),
        )
        self._initial_settings = settings or SandboxSettings()
        self.fcm_project_id = fcm_project_id
        self.service_account = service_account or keys.make_service_account(fcm_project_id)
        # Stable per state, so WhoAmI answers the same identity all run long.
        self.organization_id = str(uuid.uuid4())
        self.business_unit_id = str(uuid.uuid4())
        self.user_id = str(uuid.uuid4())
        self.contacts = contacts.ContactStore(clock)
        self.tokens = TokenStore(clock)
        self.log = requestlog.RequestLog()
        self.faults = faults.FaultEngine()
        self.fcm_messages: list[FcmMessage] = []
        self.unregistered: set[str] = set()
        self.webhook_keys: set[str] = set()
        self.token_requests: Counter[str] = Counter()
        self.credentials = Credentials(**self._credentials_fields(self._initial_credentials))
        self.settings = SandboxSettings(**self._settings_fields(self._initial_settings))
        # Set (from the loop thread) when the server stops, so hanging "timeout" faults let go.
        self.closing = asyncio.Event()

    @staticmethod
    def _credentials_fields(credentials: Credentials) -> dict[str, Any]:
        return {
            "tenant_id": credentials.tenant_id,
            "client_id": credentials.client_id,
            "client_secret": credentials.client_secret,
            "webhook_secret": credentials.webhook_secret,
        }

    @staticmethod
    def _settings_fields(settings: SandboxSettings) -> dict[str, Any]:
        return {
            "entity_set": settings.entity_set,
            "listing_field": settings.listing_field,
            "token_ttl_s": settings.token_ttl_s,
            "alternate_keys": settings.alternate_keys,
        }

    @property
    def entity_set(self) -> str:
        """The entity set the Web API answers to now: the setting, unless drift renamed it."""
        drift = self.faults.config.drift
        return drift.entity_set if drift and drift.entity_set else self.settings.entity_set

    @property
    def listing_field(self) -> str:
        """The listing field's name now: the setting, unless drift renamed it."""
        drift = self.faults.config.drift
        return drift.listing_field if drift and drift.listing_field else self.settings.listing_field

    def configure_faults(self, config: faults.FaultConfig) -> None:
        self.faults.configure(config, time.monotonic())  # the bucket runs on monotonic time
        self.contacts.retention_s = max(contacts.JOURNAL_RETENTION_S, self.faults.read_lag_s * 2)

    def rotate(
        self,
        *,
        tenant_id: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        webhook_secret: str | None = None,
    ) -> list[str]:
        """Replace credentials; a new Entra credential revokes every Entra token issued before."""
        creds = self.credentials
        changed = []
        for name, value in (
            ("tenant_id", tenant_id),
            ("client_id", client_id),
            ("client_secret", client_secret),
            ("webhook_secret", webhook_secret),
        ):
            if value is not None and value != getattr(creds, name):
                setattr(creds, name, value)
                changed.append(name)
        if {"tenant_id", "client_id", "client_secret"} & set(changed):
            creds.generation += 1
            self.tokens.revoke("entra", keep_generation=creds.generation)
        return changed

    def reset(self) -> None:
        """Forget contacts, logs, messages and faults; restore the credentials and settings.

        Tokens issued under the initial credentials survive, so a long-lived client in a test
        session keeps working; tokens issued under a rotated secret are revoked with it.
        """
        self.contacts.clear()
        self.contacts.retention_s = contacts.JOURNAL_RETENTION_S
        self.log.reset()
        self.faults.clear()
        self.fcm_messages.clear()
        self.unregistered.clear()
        self.webhook_keys.clear()
        self.token_requests.clear()
        self.tokens.issued.clear()
        if self.credentials.generation != 0:
            self.tokens.revoke("entra", keep_generation=0)
        self.credentials = Credentials(**self._credentials_fields(self._initial_credentials))
        self.settings = SandboxSettings(**self._settings_fields(self._initial_settings))

    def stats(self) -> dict[str, Any]:
        by_kind: dict[str, dict[str, int]] = {}
        for (kind, status), count in sorted(self.log.counts.items()):
            by_kind.setdefault(kind, {})[str(status)] = count
        return {
            "requests": by_kind,
            "token_requests": dict(self.token_requests),
            "tokens_issued": dict(self.tokens.issued),
            "fcm_messages": len(self.fcm_messages),
            "contacts": len(self.contacts),
            "log_entries": len(self.log.entries),
        }
