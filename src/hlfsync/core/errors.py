"""The failure taxonomy: every error from Dynamics or FCM becomes one of these, once, at the edge.

    SyncFailure                 a call to a remote system did not do what we asked
     ├── Transient              network error, timeout, 5xx, 408: retry with backoff (never
     │   │                      sooner than the answer's Retry-After), feeds the breaker
     │   └── NotRun             a $batch part Dynamics never ran: resend soon, spends nothing
     ├── Throttled              429 / service protection: pause every call until retry_after,
     │                          spends no retry and does not feed the breaker
     ├── Permanent              other 4xx, contract violations we cannot retry away: dead letter now
     │   └── Unlinked           the mentor has no contact id and no key value to address it by:
     │                          nothing sent, held and looked at again hourly (`core.outcome`)
     └── Held                   wrong for everyone, not for this operation: hold everything
         │                      (no attempt spent, circuit held), one admin alert per incident,
         │                      replay once a probe passes
         ├── AuthFailure        401/403 or a failed token request
         └── ContractFailure    the contract or configuration is wrong: unknown property or
                                entity set, 405, 415, webhook gone (404/410), TLS or host
    ConfigError                 a setting is missing or wrong; raised at start, never mid-flight

Adapters (`outbound.errors`, `notify.fcm_wire`) own the table from HTTP status to class; core owns
what each class means for an operation (`core.retry`, `core.breaker`).
"""

from __future__ import annotations

import math
from enum import StrEnum


class FailureClass(StrEnum):
    """What a failure means for the operation that met it."""

    TRANSIENT = "transient"
    THROTTLED = "throttled"
    PERMANENT = "permanent"
    AUTH = "auth"
    CONTRACT = "contract"


class SyncFailure(Exception):  # noqa: N818 - the taxonomy's root reads better without "Error"
    """A call to a remote system failed."""

    kind: FailureClass = FailureClass.TRANSIENT

    def __init__(
        self, detail: str | None = None, *, status: int | None = None, code: str | None = None
    ) -> None:
        self.detail = detail or (self.__doc__ or self.__class__.__name__).strip()
        self.status = status
        self.code = code
        super().__init__(self.detail)

    def summary(self) -> str:
        """One line for `last_error`, audit rows and dead letters; never holds a secret."""
        head = f"HTTP {self.status}" if self.status is not None else self.kind.value
        code = f" {self.code}" if self.code else ""
        # One line whatever the remote sent (error pages have newlines).
        detail = " ".join(self.detail.split())
        return f"{head}{code}: {detail}"[:500]


class Transient(SyncFailure):
    """The remote system failed in a way that may pass: retry later."""

    kind = FailureClass.TRANSIENT

    def __init__(
        self,
        detail: str | None = None,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(detail, status=status, code=code)
        # The server's own floor for the next attempt (503/502/504 may send Retry-After).
        self.retry_after_s = None if retry_after_s is None else _clamp_s(retry_after_s)


class NotRun(Transient):
    """Dynamics never ran this change (a $batch stopped before it): resend, spending nothing."""


class Throttled(SyncFailure):
    """The remote system asked us to slow down: pause every call until `retry_after_s` passes."""

    kind = FailureClass.THROTTLED

    def __init__(
        self,
        detail: str | None = None,
        *,
        retry_after_s: float,
        status: int | None = 429,
        code: str | None = None,
    ) -> None:
        super().__init__(detail, status=status, code=code)
        self.retry_after_s = _clamp_s(retry_after_s)


class Permanent(SyncFailure):
    """The remote system rejected the request; retrying cannot help: investigate."""

    kind = FailureClass.PERMANENT


class Unlinked(Permanent):
    """The mentor has no Dynamics contact id and no alternate key value to address it by."""


class Held(SyncFailure):
    """Wrong for every operation, not for this one: hold them all and alert an administrator."""

    kind = FailureClass.AUTH


class AuthFailure(Held):
    """The credentials do not work (401/403 or a failed token request): hold and alert."""

    kind = FailureClass.AUTH


class ContractFailure(Held):
    """The contract or configuration is wrong for everyone (unknown field or entity set, an
    endpoint gone, TLS or host): hold and alert, never dead-letter."""

    kind = FailureClass.CONTRACT


def _clamp_s(seconds: float) -> float:
    # NaN and negatives mean "now"; absurd values are capped at a day, like every delay.
    return 0.0 if math.isnan(seconds) else min(max(0.0, seconds), 86_400.0)


class ConfigError(Exception):
    """A setting is missing or invalid; the message names it."""
