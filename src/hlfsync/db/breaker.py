"""DynamicsCircuitBreaker: the pure breaker (`core.breaker`) persisted in `circuit_breakers`.

One row shared by every worker. Each change is read-decide-write under the row lock, decided by
the pure state machine with the caller's `now`, so a restart or another process changes nothing.
Workers keep a local view for the common case (closed, not paused: no round trip per call),
refreshed by NOTIFY `hlfsync_breaker` on every change and by `refresh()` on each claim cycle.
Opening raises one administrator alert per incident; every transition is audited and logged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from hlfsync.core import breaker as core
from hlfsync.core.breaker import Admission, BreakerConfig, BreakerSnapshot, CircuitState
from hlfsync.db.pool import Pool
from hlfsync.db.queries import q

log = structlog.get_logger(__name__)

_LOCAL_ANSWERS = frozenset({Admission.ALLOW, Admission.DENY_PAUSED, Admission.DENY_OPEN})


def _snapshot(row: Any) -> tuple[BreakerSnapshot, int]:
    state, failures, opened_at, probe_at, paused_until, auth_failed, incident = row[:7]
    snap = BreakerSnapshot(
        state=CircuitState(state),
        consecutive_failures=failures,
        opened_at=opened_at,
        probe_started_at=probe_at,
        paused_until=paused_until,
        auth_failed=auth_failed,
    )
    return snap, incident


class DynamicsCircuitBreaker:
    """The shared breaker guarding Dynamics for all workers."""

    def __init__(self, pool: Pool, config: BreakerConfig, *, name: str = "dynamics") -> None:
        self.pool = pool
        self.config = config
        self.name = name
        self.view = BreakerSnapshot()
        # Why a held view (auth_failed) is held: "auth" or "contract" (migration 0011).
        self.hold_reason: str | None = None

    async def refresh(self) -> BreakerSnapshot:
        async with self.pool.connection() as conn:
            row = await (await conn.execute(q("breaker_read"), {"name": self.name})).fetchone()
        if row is not None:
            self.view, _ = _snapshot(row)
            self.hold_reason = row[7]
        return self.view

    def local_admission(self, now: datetime) -> Admission | None:
        """`core.admit`'s answer from the local view when it needs no lock; None when it does.

        Only answers that leave the snapshot as it is and stay safe on a view a few milliseconds
        old are taken locally. A half-open circuit is always asked under the lock: handing out
        its one probe is what the lock is for.
        """
        answer = core.admit(self.view, self.config, now)
        return answer.admission if answer.admission in _LOCAL_ANSWERS else None

    def wait_until(self, now: datetime) -> datetime | None:
        """When calls may be tried again, by the local view (`core.blocked_until`)."""
        return core.blocked_until(self.view, self.config, now)

    async def admit(self, now: datetime) -> Admission:
        """May one call go to Dynamics now? PROBE means this caller is the one probe."""
        quick = self.local_admission(now)
        if quick is not None:
            return quick
        return await self._change(lambda snap: core.admit(snap, self.config, now), now)

    async def on_success(self, now: datetime) -> None:
        """A call succeeded while the view was not plain closed (a probe, a late success)."""
        await self._change(lambda snap: core.on_success(snap, now), now)

    async def on_failure(self, now: datetime, error: str) -> None:
        await self._change(lambda snap: core.on_failure(snap, self.config, now), now, error)

    async def on_throttled(self, now: datetime, until: datetime) -> None:
        await self._change(lambda snap: core.on_throttled(snap, until), now)

    async def on_auth_failure(self, now: datetime, error: str, reason: str = "auth") -> None:
        """Hold the circuit until a success: failing credentials, or (`reason="contract"`) a
        contract broken for everyone; both hold the same way and differ only in the alert."""
        await self._change(lambda snap: core.on_auth_failure(snap, now), now, error, reason)

    async def _change(
        self, decide: Any, now: datetime, error: str | None = None, reason: str | None = None
    ) -> Admission:
        async with self.pool.connection() as conn, conn.transaction():
            row = await (await conn.execute(q("breaker_lock"), {"name": self.name})).fetchone()
            if row is None:
                raise RuntimeError(f"circuit_breakers has no row {self.name!r}; run db upgrade")
            before, incident = _snapshot(row)
            hold_reason = reason or row[7]
            result = decide(before)
            admission = getattr(result, "admission", Admission.ALLOW)
            after: BreakerSnapshot = result.snapshot
            transition = result.transition
            if (
                transition is not None
                and transition.to_state is CircuitState.OPEN
                and (before.state is CircuitState.CLOSED)
            ):
                incident += 1
            if after != before or hold_reason != row[7]:
                await conn.execute(
                    q("breaker_store"),
                    {
                        "name": self.name,
                        "state": after.state.value,
                        "failures": after.consecutive_failures,
                        "opened_at": after.opened_at,
                        "probe_started_at": after.probe_started_at,
                        "paused_until": after.paused_until,
                        "auth_failed": after.auth_failed,
                        "incident": incident,
                        "hold_reason": hold_reason,
                        "error": error,
                        "now": now,
                    },
                )
                await conn.execute(q("breaker_notify"), {"name": self.name})
            if transition is not None:
                await self._announce(
                    conn=conn,
                    transition=transition,
                    after=after,
                    incident=incident,
                    error=error,
                    now=now,
                )
        self.view = after
        self.hold_reason = hold_reason if after.auth_failed else None
        return admission if isinstance(admission, Admission) else Admission.ALLOW

    async def _announce(
        self,
        *,
        conn: AsyncConnection[Any],
        transition: core.Transition,
        after: BreakerSnapshot,
        incident: int,
        error: str | None,
        now: datetime,
    ) -> None:
        details = {
            "breaker": self.name,
            "from": transition.from_state.value,
            "to": transition.to_state.value,
            "reason": transition.reason.value,
            "consecutive_failures": after.consecutive_failures,
            "incident": incident,
            "error": error,
        }
        log.warning("breaker_transition", **details)
        await conn.execute(
            q("audit"),
            {
                "now": now,
                "mentor": None,
                "queue_id": None,
                "event": "breaker_transition",
                "actor": "breaker",
                "details": Jsonb(details),
            },
        )
        opened = transition.from_state is CircuitState.CLOSED
        # Credentials failing raise their own alert (db.health): one incident, one alert.
        by_auth = transition.reason is core.Reason.AUTH_FAILURE
        if opened and transition.to_state is CircuitState.OPEN and not by_auth:
            await conn.execute(
                q("raise_admin_alert"),
                {
                    "kind": "breaker_open",
                    "key": f"{self.name}:{incident}",
                    "payload": Jsonb({"type": "hlf_sync_breaker_open", "breaker": self.name}),
                    "details": Jsonb(_without_nones(details)),
                    "now": now,
                },
            )


def _without_nones(details: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in details.items() if v is not None}
