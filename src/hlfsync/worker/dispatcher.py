"""Alert delivery: claim due push deliveries, send each through the Notifier, record the outcome.

Every delivery is a row with a lease, so a crash loses nothing (the lease runs out and another
dispatcher sends it). The narrow window where FCM accepted a message but the worker died before
recording it can send it twice (FCM has no idempotency key): at-least-once, by choice, since a
lost alert is worse than a repeated one.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import structlog

from hlfsync.core.clock import Clock
from hlfsync.db.pool import Pool
from hlfsync.db.queries import q
from hlfsync.notify.base import DeliveryOutcome, Notifier
from hlfsync.notify.log import LogNotifier

log = structlog.get_logger("hlfsync.alerts")

MAX_DELIVERY_ATTEMPTS = 8
LEASE_S = 60.0


def delivery_backoff(attempts_made: int, hint_s: float | None) -> timedelta:
    """Exponential from 5 s, capped at 10 minutes; the provider's Retry-After is a floor."""
    delay = min(5.0 * 2 ** max(attempts_made - 1, 0), 600.0)
    return timedelta(seconds=max(delay, hint_s or 0.0))


class AlertDispatcher:
    """Sends what the alert rows ask for."""

    def __init__(self, pool: Pool, notifier: Notifier, clock: Clock, *, batch: int = 50) -> None:
        self.pool = pool
        self.notifier = notifier
        self.clock = clock
        self.batch = batch

    @property
    def configured(self) -> bool:
        return not isinstance(self.notifier, LogNotifier)

    async def run_once(self) -> int:
        """Send every due delivery; returns how many were attempted."""
        now = self.clock.now()
        async with self.pool.connection() as conn:
            if not self.configured:
                cur = await conn.execute(q("deliveries_not_configured"), {"now": now})
                alert_ids = sorted({row[0] for row in await cur.fetchall()})
                for alert_id in alert_ids:
                    log.warning("alert_stored_only", alert_id=alert_id,
                                reason="push delivery is not configured")  # fmt: skip
                return 0
            cur = await conn.execute(
                q("claim_deliveries"), {"now": now, "limit": self.batch, "lease": LEASE_S}
            )
            rows = await cur.fetchall()
        await asyncio.gather(*(self._send(row) for row in rows))
        return len(rows)

    async def _send(self, row: Any) -> None:
        delivery_id, alert_id, _user, token, attempts, payload, kind = row
        data = {str(k): str(v) for k, v in (payload or {}).items()}
        result = await self.notifier.send(token, data)
        now: datetime = self.clock.now()
        bound = log.bind(alert_id=alert_id, delivery_id=delivery_id, kind=kind,
                         outcome=result.outcome.value, attempt=attempts + 1)  # fmt: skip
        outcome = result.outcome
        async with self.pool.connection() as conn, conn.transaction():
            if outcome is DeliveryOutcome.DELIVERED:
                await _finish(
                    conn,
                    delivery_id,
                    status="delivered",
                    error=None,
                    message=result.message_name,
                    now=now,
                )
                bound.info("alert_delivered")
            elif outcome is DeliveryOutcome.UNREGISTERED:
                await _finish(
                    conn,
                    delivery_id,
                    status="unregistered",
                    error=result.reason,
                    message=None,
                    now=now,
                )
                await conn.execute(q("forget_device_token"), {"token": token})
                bound.warning("device_token_removed", reason=result.reason)
            elif outcome in RETRYABLE and attempts + 1 < MAX_DELIVERY_ATTEMPTS:
                at = now + delivery_backoff(attempts + 1, result.retry_after_s)
                params = {"id": delivery_id, "at": at, "error": result.reason}
                await conn.execute(q("delivery_retry"), params)
                bound.warning("alert_delivery_retry", reason=result.reason, next_attempt_at=at)
            else:
                await _finish(
                    conn, delivery_id, status="failed", error=result.reason, message=None, now=now
                )
                bound.error("alert_delivery_failed", reason=result.reason)


RETRYABLE = (DeliveryOutcome.RETRY, DeliveryOutcome.AUTH)


async def _finish(
    conn: Any,
    delivery_id: int,
    *,
    status: str,
    error: str | None,
    message: str | None,
    now: datetime,
) -> None:
    params = {"id": delivery_id, "status": status, "error": error, "message": message, "now": now}
    await conn.execute(q("delivery_done"), params)
