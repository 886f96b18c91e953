"""Fault rules: what `POST /_sandbox/faults` accepts, and which fault (if any) hits a request.

Owns matching, counting (`times`), seeded chance (`probability`) and the Dataverse-style token
bucket. It never touches a socket: the gateway carries out the `Fault` it is handed.
"""

from __future__ import annotations

import math
import random
import re
import uuid
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Kind = Literal["dataverse", "token", "discovery", "fcm", "webhook"]

DEFAULT_HANG_S = 30.0


class FaultRule(BaseModel):
    """One rule. Unset matchers match anything: narrow a rule with `method`, `path` or `kind`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: str | None = None  # GET, PATCH, POST...; None or "*" matches any method
    path: str | None = None  # a prefix of the request path; a value starting with ^ is a regex
    kind: Kind | None = None  # which emulated service; None matches all of them
    contactid: uuid.UUID | None = None  # only requests about this contact
    status: Annotated[int, Field(ge=100, le=599)] | Literal["timeout", "reset"]
    times: Annotated[int, Field(ge=1)] | None = None  # None: forever
    probability: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0
    retry_after: Annotated[float, Field(ge=0.0)] | None = None  # seconds, sent as Retry-After
    body: str | None = None  # sent verbatim instead of the service's usual error body
    content_type: str | None = None  # with `body`; defaults to application/json
    hang_s: Annotated[float, Field(gt=0.0)] | None = None  # "timeout": give up after this

    @field_validator("method")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return None if value in (None, "*") else value.upper()

    @field_validator("path")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None and value.startswith("^"):
            re.compile(value)
        return value


class FaultConfig(BaseModel):
    """The whole fault set-up; every POST replaces it, omitted fields take these defaults."""

    model_config = ConfigDict(extra="forbid")

    rules: list[FaultRule] = Field(default_factory=list)
    latency_ms: Annotated[float, Field(ge=0.0, le=600_000.0)] = 0.0
    rate_limit_per_s: Annotated[float, Field(gt=0.0)] | None = None
    auth: Literal["ok", "reject"] = "ok"
    fcm_auth: Literal["ok", "reject"] = "ok"
    read_lag_ms: Annotated[float, Field(ge=0.0, le=3_600_000.0)] = 0.0
    seed: int | None = None


@dataclass(slots=True)
class Fault:
    """A decision to misbehave: a status (with its headers and body) or a timeout or a reset."""

    action: int | Literal["timeout", "reset"]
    label: str  # for the request log: "rule:0", "rate_limit"
    retry_after: float | None = None
    body: str | None = None
    content_type: str | None = None
    hang_s: float = DEFAULT_HANG_S


@dataclass(slots=True)
class _Armed:
    rule: FaultRule
    index: int
    remaining: int | None
    regex: re.Pattern[str] | None
    contactid: str | None

    def matches(self, kind: str, method: str, path: str, contactid: str | None) -> bool:
        rule = self.rule
        return (
            self.remaining != 0
            and (rule.kind is None or rule.kind == kind)
            and (rule.method is None or rule.method == method)
            and (self.contactid is None or self.contactid == contactid)
            and self._path_matches(path)
        )

    def _path_matches(self, path: str) -> bool:
        if self.regex is not None:
            return self.regex.match(path) is not None
        return self.rule.path is None or path.startswith(self.rule.path)


class TokenBucket:
    """Dataverse service protection in miniature: `rate` requests a second, bursts up to `rate`."""

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.updated = now

    def take(self, now: float) -> float | None:
        """Spend one token; or, when empty, the whole seconds until one is back (Retry-After)."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return None
        return float(max(1, math.ceil((1.0 - self.tokens) / self.rate)))


class FaultEngine:
    """The live fault set-up with its counters, RNG and bucket."""

    def __init__(self) -> None:
        self.config = FaultConfig()
        self._armed: list[_Armed] = []
        self._rng = random.Random()  # noqa: S311 - chaos, not cryptography
        self._bucket: TokenBucket | None = None
        self._has_targeted = False

    def configure(self, config: FaultConfig, now: float) -> None:
        self.config = config
        self._armed = [
            _Armed(
                rule=rule,
                index=index,
                remaining=rule.times,
                regex=re.compile(rule.path) if rule.path and rule.path.startswith("^") else None,
                contactid=None if rule.contactid is None else str(rule.contactid),
            )
            for index, rule in enumerate(config.rules)
        ]
        self._has_targeted = any(armed.contactid is not None for armed in self._armed)
        self._rng = random.Random(config.seed)  # noqa: S311 - reproducible chaos
        rate = config.rate_limit_per_s
        self._bucket = None if rate is None else TokenBucket(rate, now)

    def clear(self) -> None:
        self.configure(FaultConfig(), 0.0)

    @property
    def latency_s(self) -> float:
        return self.config.latency_ms / 1000.0

    @property
    def read_lag_s(self) -> float:
        return self.config.read_lag_ms / 1000.0

    def decide(
        self,
        kind: str,
        method: str,
        path: str,
        contactid: str | None = None,
        *,
        targeted_only: bool = False,
    ) -> Fault | None:
        """The first armed rule that matches and wins its dice roll, spent once; else None.

        `targeted_only` is the second look a handler takes once it has read a contact id from the
        body (webhooks): only contact-targeted rules apply, so no rule fires twice per request.
        """
        if not self._armed or (targeted_only and not self._has_targeted):
            return None
        for armed in self._armed:
            if targeted_only and armed.contactid is None:
                continue
            if not armed.matches(kind, method, path, contactid):
                continue
            rule = armed.rule
            if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                continue
            if armed.remaining is not None:
                armed.remaining -= 1
            return Fault(
                action=rule.status,
                label=f"rule:{armed.index}",
                retry_after=rule.retry_after,
                body=rule.body,
                content_type=rule.content_type,
                hang_s=rule.hang_s or DEFAULT_HANG_S,
            )
        return None

    def throttle(self, now: float) -> Fault | None:
        """A 429 when the request exceeds `rate_limit_per_s` (Dataverse Web API only)."""
        if self._bucket is None:
            return None
        wait_s = self._bucket.take(now)
        if wait_s is None:
            return None
        return Fault(action=429, label="rate_limit", retry_after=wait_s)

    def describe(self) -> dict[str, object]:
        """The configuration as posted, plus how many firings each rule has left."""
        data = self.config.model_dump(mode="json")
        for armed, rule in zip(self._armed, data["rules"], strict=True):
            rule["remaining"] = armed.remaining
        return data
