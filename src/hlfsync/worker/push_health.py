"""The push side of the health check: are the FCM credentials granted a token, and would the
operators be told of an alert at all? Each check returns a verdict and one line.

A refused token request records the `fcm` credential check as failing (one operator alert per
failing spell, through `db.health`); the first grant afterwards records the recovery.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hlfsync.core.clock import Clock
from hlfsync.db import health
from hlfsync.db.pool import Pool
from hlfsync.notify import operators
from hlfsync.notify.base import DeliveryOutcome, Notifier
from hlfsync.settings import Settings

CHECK = "fcm"

Status = Literal["ok", "failing", "unknown", "off"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """`ok`, `failing` (act now), `unknown` (could not tell: Google unreachable) or `off`."""

    status: Status
    detail: str

    @property
    def failing(self) -> bool:
        return self.status == "failing"


async def check_push_credentials(pool: Pool, notifier: Notifier, clock: Clock) -> Verdict:
    """Ask Google for a fresh token with the configured key; record what it said."""
    check = getattr(notifier, "check", None)
    if check is None:
        return Verdict("off", "push delivery is not configured: alerts are stored and logged only")
    result = await check()
    now = clock.now()
    if result.outcome is DeliveryOutcome.DELIVERED:
        await health.record_ok(pool, name=CHECK, detail="FCM token granted", now=now)
        return Verdict("ok", "FCM token granted")
    detail = result.reason or result.outcome.value
    if result.outcome is DeliveryOutcome.AUTH:
        await health.record_failure(pool, name=CHECK, contract=CHECK, detail=detail, now=now)
        return Verdict("failing", detail)
    return Verdict("unknown", detail)


def check_operator_channel(settings: Settings) -> Verdict:
    """Whether administrator alerts have a way to operators that does not depend on FCM."""
    problem = operators.channel_problem(settings)
    if problem is not None:
        return Verdict("off", problem)
    names = [channel for channel, on in (
        ("webhook", settings.operator_webhook_url is not None),
        ("e-mail", bool(settings.operator_smtp_host)),
    ) if on]  # fmt: skip
    return Verdict("ok", "operators' channel: " + " and ".join(names))
