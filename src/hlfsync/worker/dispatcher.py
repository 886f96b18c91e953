"""Alert delivery: claim due push deliveries, send each through the Notifier, record the outcome;
then send due operator notices through the operators' channels (webhook, e-mail).

Every delivery is a row with a lease, so a crash loses nothing (the lease runs out and another
dispatcher sends it). The narrow window where FCM accepted a message but the worker died before
recording it can send it twice (FCM has no idempotency key): at-least-once, by choice, since a
lost alert is worse than a repeated one; the incident's collapse key makes a device that was
offline show it once.

A delivery fails for good only for a reason about that message or device (rejected,
unregistered). While the push channel itself is refused (`auth`) or unusable (`paused`: the
token endpoint is down), every claimed delivery goes back to pending as it was, no attempt
spent, and this dispatcher holds off with backoff; each probe costs one token request, shared
by the whole batch. The first success ends the hold and the held deliveries go out in order.

A round's pushes go out together (devices in parallel, sharing one token request) and the ones
FCM accepted are recorded in one statement: a first night sends 115,000, on the database that
serves people's changes.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog
from psycopg.types.json import Jsonb

from hlfsync.core.clock import Clock
from hlfsync.db import health
from hlfsync.db.pool import Pool
from hlfsync.db.queries import q
from hlfsync.notify import operators
from hlfsync.notify.base import DeliveryOutcome, DeliveryResult, Notifier
from hlfsync.notify.log import LogNotifier, fingerprint

log = structlog.get_logger("hlfsync.alerts")

LEASE_S = 60.0
PUSH_CHECK = "fcm"  # the credential_health row of the push credentials
HOLD_FIRST_S = 5.0
HOLD_MAX_S = 300.0
OPERATOR_RETRY_MAX_S = 900.0


def delivery_backoff(attempts_made: int, hint_s: float | None) -> timedelta:
    """Exponential from 5 s, capped at 10 minutes; the provider's Retry-After is a floor."""
    delay = min(5.0 * 2 ** max(attempts_made - 1, 0), 600.0)
    return timedelta(seconds=max(delay, hint_s or 0.0))


def hold_backoff(holds_in_a_row: int, hint_s: float | None) -> timedelta:
    """How long the push channel is left alone after the n-th refusal in a row: 5 s to 5 min."""
    delay = min(HOLD_FIRST_S * 2 ** max(holds_in_a_row - 1, 0), HOLD_MAX_S)
    return timedelta(seconds=max(delay, hint_s or 0.0))


def operator_backoff(attempts_made: int) -> timedelta:
    """Operator notices never give up: from 10 s, doubling, capped at 15 minutes."""
    return timedelta(seconds=min(10.0 * 2 ** max(attempts_made - 1, 0), OPERATOR_RETRY_MAX_S))


def collapse_key(kind: str, incident_key: str) -> str:
    """A short opaque key per incident: pushes of one incident replace each other on a device."""
    return hashlib.sha256(f"{kind}:{incident_key}".encode()).hexdigest()[:32]


class AlertDispatcher:
    """Sends what the alert rows and operator notices ask for."""

    def __init__(
        self,
        pool: Pool,
        notifier: Notifier,
        clock: Clock,
        *,
        batch: int = 50,
        channels: Sequence[operators.Channel] = (),
    ) -> None:
        self.pool = pool
        self.notifier = notifier
        self.clock = clock
        self.batch = batch
        self.channels = list(channels)
        self.held_until: datetime | None = None
        self.holds_in_a_row = 0

    @property
    def configured(self) -> bool:
        return not isinstance(self.notifier, LogNotifier)

    async def run_once(self) -> int:
        """One round: up to `batch` due deliveries and operator notices; returns how many were
        attempted (0: nothing is due, or the push channel is held)."""
        now = self.clock.now()
        pushed = await self._push(now)
        told = await self._tell_operators(now)
        return pushed + told

    async def aclose(self) -> None:
        for channel in self.channels:
            close = getattr(channel, "aclose", None)
            if close is not None:
                await close()

    # --- push ---------------------------------------------------------------------------------

    async def _push(self, now: datetime) -> int:
        async with self.pool.connection() as conn:
            if not self.configured:
                cur = await conn.execute(q("deliveries_not_configured"), {"now": now})
                alert_ids = sorted({row[0] for row in await cur.fetchall()})
                for alert_id in alert_ids:
                    log.warning("alert_stored_only", alert_id=alert_id,
                                reason="push delivery is not configured")  # fmt: skip
                return 0
            if self.held_until is not None and now < self.held_until:
                return 0
            # Neither is prepared (as the sync queue's claim): a plan cached while there were a
            # few deliveries would read them all, every round, in a night of 85,000.
            await conn.execute(q("release_expired_deliveries"), {"now": now}, prepare=False)
            cur = await conn.execute(
                q("claim_deliveries"),
                {"now": now, "limit": self.batch, "lease": LEASE_S},
                prepare=False,
            )
            # UPDATE … RETURNING does not keep the CTE's order: back to the alerts' raise order.
            rows = sorted(await cur.fetchall(), key=lambda row: (row[1], row[0]))
        if not rows:
            return 0
        # Devices in parallel, each device's pushes one after another in claim order, so a phone
        # gets its alerts in the order they were raised.
        by_device: dict[str, list[Any]] = {}
        for row in rows:
            by_device.setdefault(row[3], []).append(row)
        sent = await asyncio.gather(*(self._send_in_order(group) for group in by_device.values()))
        pairs = [pair for group in sent for pair in group]
        held = [(row, result) for row, result in pairs if result.holds_channel]
        done = [(row, result) for row, result in pairs if not result.holds_channel]
        at = self.clock.now()
        delivered = [(row, r) for row, r in done if r.outcome is DeliveryOutcome.DELIVERED]
        if delivered:
            await self._record_delivered(delivered, at)
        for row, result in done:
            if result.outcome is not DeliveryOutcome.DELIVERED:
                await self._record(row, result, at)
        if held:
            await self._hold([row for row, _ in held], held[0][1], at)
        elif delivered:
            await self._channel_ok(at)
        # Held ones count as attempted: the loop comes straight back, finds the hold, and waits.
        return len(rows)

    async def _send_in_order(self, rows: list[Any]) -> list[tuple[Any, DeliveryResult]]:
        """One device's pushes in order; once the channel is held, the rest wait unsent."""
        results: list[tuple[Any, DeliveryResult]] = []
        for row in rows:
            result = await self._send(row)
            results.append((row, result))
            if result.holds_channel:
                results += [(rest, result) for rest in rows[len(results) :]]
                break
        return results

    async def _send(self, row: Any) -> DeliveryResult:
        _id, _alert, _user, token, _attempts, payload, kind, incident_key = row
        data = {str(k): str(v) for k, v in (payload or {}).items()}
        return await self.notifier.send(token, data, collapse_key=collapse_key(kind, incident_key))

    async def _hold(self, rows: list[Any], result: DeliveryResult, now: datetime) -> None:
        """The channel, not the messages, failed: put them back untouched and wait."""
        self.holds_in_a_row += 1
        hint = result.retry_after_s
        self.held_until = now + hold_backoff(self.holds_in_a_row, hint)
        params = {"ids": [row[0] for row in rows], "error": result.reason}
        async with self.pool.connection() as conn:
            await conn.execute(q("delivery_hold"), params)
        log.warning("alert_deliveries_held", outcome=result.outcome.value, reason=result.reason,
                    held=len(rows), until=self.held_until)  # fmt: skip
        if result.outcome is DeliveryOutcome.AUTH:
            await health.record_failure(
                self.pool, name=PUSH_CHECK, contract=PUSH_CHECK,
                detail=result.reason or "push credentials refused", now=now,
            )  # fmt: skip

    async def _channel_ok(self, now: datetime) -> None:
        if self.holds_in_a_row:
            log.info("alert_deliveries_resumed", after_holds=self.holds_in_a_row)
            await health.record_ok(
                self.pool, name=PUSH_CHECK, detail="FCM accepted a push", now=now
            )
        self.held_until, self.holds_in_a_row = None, 0

    async def _record_delivered(
        self, delivered: list[tuple[Any, DeliveryResult]], now: datetime
    ) -> None:
        """The pushes FCM accepted, recorded in one statement (one commit for the batch)."""
        params = {
            "ids": [row[0] for row, _ in delivered],
            "messages": [result.message_name for _, result in delivered],
            "now": now,
        }
        async with self.pool.connection() as conn:
            # Not prepared: a join planned while the table was small would scan it at night.
            cur = await conn.execute(q("deliveries_delivered"), params, prepare=False)
            recorded = cur.rowcount
        if recorded < len(delivered):
            # Another dispatcher took these over after the lease ran out: they go out again.
            log.warning("alert_deliveries_lease_lost", delivered=len(delivered),
                        recorded=recorded)  # fmt: skip
        for row, _ in delivered:
            delivery_id, alert_id, _user, token, attempts, _payload, kind, _key = row
            log.info("alert_delivered", alert_id=alert_id, delivery_id=delivery_id, kind=kind,
                     outcome=DeliveryOutcome.DELIVERED.value, attempt=attempts + 1,
                     device=fingerprint(token))  # fmt: skip

    async def _record(self, row: Any, result: DeliveryResult, now: datetime) -> None:
        """A push FCM did not accept: retried later, failed for good, or its device retired."""
        delivery_id, alert_id, user_id, token, attempts, _payload, kind, _key = row
        bound = log.bind(alert_id=alert_id, delivery_id=delivery_id, kind=kind,
                         outcome=result.outcome.value, attempt=attempts + 1)  # fmt: skip
        outcome = result.outcome
        async with self.pool.connection() as conn, conn.transaction():
            if outcome is DeliveryOutcome.UNREGISTERED:
                await _finish(conn, delivery_id, status="unregistered", error=result.reason,
                              message=None, now=now)  # fmt: skip
                await _retire_token(conn, token, user_id, result.reason, now)
                bound.warning("device_token_removed", reason=result.reason)
            elif outcome is DeliveryOutcome.RETRY:
                # Not about this message (FCM busy, quota, network): retried without a limit.
                at = now + delivery_backoff(attempts + 1, result.retry_after_s)
                params = {"id": delivery_id, "at": at, "error": result.reason}
                await conn.execute(q("delivery_retry"), params)
                bound.warning("alert_delivery_retry", reason=result.reason, next_attempt_at=at)
            else:
                await _finish(conn, delivery_id, status="failed", error=result.reason,
                              message=None, now=now)  # fmt: skip
                bound.error("alert_delivery_failed", reason=result.reason)

    # --- operators' channel -------------------------------------------------------------------

    async def _tell_operators(self, now: datetime) -> int:
        if not self.channels:
            return 0
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                q("operator_notices_claim"), {"now": now, "limit": self.batch, "lease": LEASE_S}
            )
            rows = await cur.fetchall()
        for row in rows:
            await self._tell(row)
        return len(rows)

    async def _tell(self, row: Any) -> None:
        notice_id, kind, incident_key, event, details, sent_to, attempts = row
        notice = operators.Notice(kind, incident_key, event, details or {})
        text = operators.notice_text(notice)
        reached = list(sent_to or [])
        errors: list[str] = []
        for channel in self.channels:
            if channel.name in reached:
                continue
            problem = await channel.send(text)
            if problem is None:
                reached.append(channel.name)
            else:
                errors.append(f"{channel.name}: {problem}")
        now = self.clock.now()
        bound = log.bind(notice_id=notice_id, kind=kind, incident=incident_key, event=event)
        async with self.pool.connection() as conn:
            if not errors:
                await conn.execute(
                    q("operator_notice_delivered"),
                    {"id": notice_id, "sent_to": reached, "now": now},
                )
                bound.info("operator_notice_sent", channels=reached)
                return
            at = now + operator_backoff(attempts + 1)
            error = "; ".join(errors)[:500]
            await conn.execute(
                q("operator_notice_retry"),
                {"id": notice_id, "sent_to": reached, "error": error, "at": at},
            )
            bound.warning("operator_notice_retry", reason=error, next_attempt_at=at)


async def _retire_token(
    conn: Any, token: str, user_id: Any, reason: str | None, now: datetime
) -> None:
    """FCM says the token is dead or invalid: stop sending to it, and say so in the audit log."""
    cur = await conn.execute(q("forget_device_token"), {"token": token})
    if cur.rowcount:
        details = {"device": fingerprint(token), "user_id": str(user_id), "reason": reason}
        await conn.execute(
            q("audit"),
            {"now": now, "mentor": None, "queue_id": None, "event": "device_token_retired",
             "actor": "alerts", "details": Jsonb(details)},
        )  # fmt: skip


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
