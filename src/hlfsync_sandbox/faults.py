"""Fault rules: what `POST /_sandbox/faults` accepts, and which fault (if any) hits a request.

Owns matching, counting (`times`), seeded chance (`probability`), Dataverse's service protection
limits (a sliding window per user, on by default) and the benchmarks' token bucket
(`rate_limit_per_s`). It never touches a socket: the gateway carries out the `Fault` it is handed.
"""

from __future__ import annotations

import math
import random
import re
import uuid
from collections import deque
from dataclasses import dataclass, field
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


class ServiceProtectionConfig(BaseModel):
    """Dataverse's service protection limits, per user over a sliding window (defaults: the
    documented 6000 requests and 20 minutes of combined execution time per 5 minutes)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests: Annotated[int, Field(ge=1)] = 6000
    execution_ms: Annotated[float, Field(gt=0.0)] = 1_200_000.0
    window_s: Annotated[float, Field(gt=0.0, le=3600.0)] = 300.0
    # Each request sent while throttled pushes the end of the throttle back by this much: a
    # client that keeps sending waits longer, by at most one more window.
    penalty_s: Annotated[float, Field(ge=0.0)] = 1.0


_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class DriftConfig(BaseModel):
    """Contract drift: what HLF's side changed under us. Clearing the faults restores it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    listing_field: str | None = Field(default=None, pattern=_NAME)  # the field was renamed
    entity_set: str | None = Field(default=None, pattern=_NAME)  # the entity set is another
    webhook: Literal["ok", "gone", "not_found"] = "ok"  # the webhook URL answers 410 / 404


class FaultConfig(BaseModel):
    """The whole fault set-up; every POST replaces it, omitted fields take these defaults."""

    model_config = ConfigDict(extra="forbid")

    rules: list[FaultRule] = Field(default_factory=list)
    latency_ms: Annotated[float, Field(ge=0.0, le=600_000.0)] = 0.0
    rate_limit_per_s: Annotated[float, Field(gt=0.0)] | None = None
    # None turns service protection off (an isolated figure); the default emulates Dataverse.
    service_protection: ServiceProtectionConfig | None = Field(
        default_factory=ServiceProtectionConfig
    )
    auth: Literal["ok", "reject"] = "ok"
    fcm_auth: Literal["ok", "reject"] = "ok"
    read_lag_ms: Annotated[float, Field(ge=0.0, le=3_600_000.0)] = 0.0
    seed: int | None = None
    drift: DriftConfig | None = None


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


@dataclass(slots=True)
class _Call:
    at: float
    execution_s: float = 0.0


@dataclass(slots=True)
class ServiceProtection:
    """The limits of one user: requests and execution time in a sliding window, and a throttle
    whose end moves further away with every request sent while it runs, by one more window at
    most: the calls a client had in flight when the first 429 came back cannot be recalled, and
    a wait that grew with each of them (it once did, quadratically) would punish concurrency
    rather than persistence."""

    config: ServiceProtectionConfig
    calls: deque[_Call] = field(default_factory=deque)
    execution_s: float = 0.0
    blocked_until: float = 0.0
    freed_at: float = 0.0  # when the window frees up, before any penalty

    def admit(self, now: float) -> tuple[float, str] | None:
        """None: go (the call is counted); else (Retry-After in whole seconds, which limit)."""
        cfg = self.config
        while self.calls and self.calls[0].at <= now - cfg.window_s:
            self.execution_s -= self.calls.popleft().execution_s
        if now < self.blocked_until:
            self.blocked_until = min(
                self.blocked_until + cfg.penalty_s, self.freed_at + cfg.window_s
            )
            return float(max(1, math.ceil(self.blocked_until - now))), "requests"
        if len(self.calls) >= cfg.requests:
            self.blocked_until = self.freed_at = (
                self.calls[len(self.calls) - cfg.requests].at + cfg.window_s
            )
            return float(max(1, math.ceil(self.blocked_until - now))), "requests"
        if self.execution_s * 1000.0 >= cfg.execution_ms:
            self.blocked_until = self.freed_at = self._execution_frees(now)
            return float(max(1, math.ceil(self.blocked_until - now))), "execution"
        self.calls.append(_Call(now))
        return None

    def charge(self, execution_s: float) -> None:
        """Add a finished call's execution time to the newest call in the window."""
        if self.calls:
            self.calls[-1].execution_s += execution_s
            self.execution_s += execution_s

    def _execution_frees(self, now: float) -> float:
        over = self.execution_s - self.config.execution_ms / 1000.0
        for call in self.calls:
            over -= call.execution_s
            if over < 0:
                return call.at + self.config.window_s
        return now + 1.0


@dataclass(slots=True)
class SharedTime:
    """How long each request had the server: the wall time divided among the requests in flight
    (processor sharing). The sandbox is one event loop, so fifty concurrent calls each take fifty
    times their own work in wall time; Dataverse, with a thread per request on many servers,
    counts a call's own execution time against the limit. Pure: the caller passes the time."""

    in_flight: int = 0
    virtual: float = 0.0
    updated: float = 0.0

    def start(self, now: float) -> float:
        """A request starts; returns its mark for `finish`."""
        self._advance(now)
        self.in_flight += 1
        return self.virtual

    def finish(self, now: float, mark: float) -> float:
        """A request ends; returns its share of the server since `mark`, in seconds."""
        self._advance(now)
        self.in_flight = max(0, self.in_flight - 1)
        return self.virtual - mark

    def _advance(self, now: float) -> None:
        if self.in_flight:
            self.virtual += (now - self.updated) / self.in_flight
        self.updated = now


class FaultEngine:
    """The live fault set-up with its counters, RNG and bucket."""

    def __init__(self) -> None:
        self.config = FaultConfig()
        self._armed: list[_Armed] = []
        self._rng = random.Random()  # noqa: S311 - chaos, not cryptography
        self._bucket: TokenBucket | None = None
        self._has_targeted = False
        self._protection: dict[str, ServiceProtection] = {}
        self.shared = SharedTime()  # outlives configure(): calls in flight stay in flight

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
        self._protection = {}

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

    def throttle(self, now: float, user: str = "") -> Fault | None:
        """A 429 when the request exceeds `user`'s service protection limits or
        `rate_limit_per_s` (Dataverse Web API only). Retry-After is in whole seconds."""
        protection = self._limits(user)
        if protection is not None:
            verdict = protection.admit(now)
            if verdict is not None:
                return Fault(action=429, label=f"service_protection:{verdict[1]}",
                             retry_after=verdict[0])  # fmt: skip
        if self._bucket is None:
            return None
        wait_s = self._bucket.take(now)
        if wait_s is None:
            return None
        return Fault(action=429, label="rate_limit", retry_after=wait_s)

    def charge(self, user: str, execution_s: float) -> None:
        """Count a finished call's execution time against `user`'s window."""
        protection = self._limits(user)
        if protection is not None:
            protection.charge(execution_s)

    def _limits(self, user: str) -> ServiceProtection | None:
        config = self.config.service_protection
        explicit = "service_protection" in self.config.model_fields_set
        if config is None or (self.config.rate_limit_per_s is not None and not explicit):
            # `rate_limit_per_s` alone replaces the emulated limits (benchmark figures).
            return None
        protection = self._protection.get(user)
        if protection is None:
            protection = self._protection[user] = ServiceProtection(config)
        return protection

    def describe(self) -> dict[str, object]:
        """The configuration as posted, plus how many firings each rule has left."""
        data = self.config.model_dump(mode="json")
        for armed, rule in zip(self._armed, data["rules"], strict=True):
            rule["remaining"] = armed.remaining
        return data
