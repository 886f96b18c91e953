"""/metrics: Prometheus metrics read from PostgreSQL, so any API process reports the whole system.

Workers and the API may run as separate processes on separate machines; only the database sees
every attempt. Gauges are read fresh (cached `CACHE_S`); counters and the Dynamics latency
histogram are totals over the append-only audit log, added up incrementally: rows older than
`SETTLE_S` are counted once, the newer ones recounted each scrape, so a row whose transaction
commits late is still counted exactly once. The families go to `hlfsync.metrics.FROM_DATABASE`
on the default registry, beside the process-local metrics other modules keep there.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prometheus_client import REGISTRY, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from hlfsync import metrics as registry
from hlfsync.api import rls
from hlfsync.core import renewals
from hlfsync.core.clock import Clock
from hlfsync.db.pool import Pool
from hlfsync.db.queue import BULK, LIVE

CACHE_S = 5.0
SETTLE_S = 60.0
BOUNDS_MS = (5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0)
# The sync lag's: milliseconds for a person's change (the objective is 100 ms, also while the
# nightly jobs run), up to an hour for a night's backlog or an outage.
LAG_BOUNDS_MS = (10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 15000.0,
                 60000.0, 300000.0, 3600000.0)  # fmt: skip
LANES = (LIVE.name, BULK.name)  # the queue's lanes, as the workers claim them
QUEUE_STATUSES = ("pending", "in_progress", "succeeded", "dead_lettered", "superseded")
DELIVERY_STATUSES = (
    "pending", "in_progress", "delivered", "failed", "unregistered", "not_configured"
)  # fmt: skip
_ATTEMPTS = {  # audit event -> the attempt's outcome
    "sync_succeeded": "succeeded",
    "sync_retry_scheduled": "retry_scheduled",
    "sync_throttled": "throttled",
    "dead_lettered": "dead_lettered",
}


@dataclass
class Tally:
    """Audit rows added up: events by type, attempts by (outcome, class), call times, and the
    sync lag of each success by lane."""

    events: Counter[str] = field(default_factory=Counter)
    attempts: Counter[tuple[str, str]] = field(default_factory=Counter)
    buckets: list[int] = field(default_factory=lambda: [0] * (len(BOUNDS_MS) + 1))
    calls: int = 0
    call_ms: float = 0.0
    lags: dict[str, Lag] = field(default_factory=lambda: {lane: Lag() for lane in LANES})

    def add(self, rows: Iterable[dict[str, Any]]) -> Tally:
        for row in rows:
            n, event = int(row["n"]), row["event_type"]
            self.events[event] += n
            if event in _ATTEMPTS:
                self.attempts[(_ATTEMPTS[event], _class(event, row["reason"]))] += n
            if row["timed"]:
                # `bucket` counts the bounds >= the call time; the `le` bucket it falls in is
                # the one after all the bounds below it.
                self.buckets[len(BOUNDS_MS) - int(row["bucket"])] += n
                self.calls += n
                self.call_ms += float(row["duration_ms"])
            if row["lane"] in self.lags:
                lag = self.lags[row["lane"]]
                lag.buckets[len(LAG_BOUNDS_MS) - int(row["lag_bucket"])] += n
                lag.n += n
                lag.ms += float(row["lag_ms"])
        return self

    def plus(self, other: Tally) -> Tally:
        return Tally(
            self.events + other.events,
            self.attempts + other.attempts,
            [a + b for a, b in zip(self.buckets, other.buckets, strict=True)],
            self.calls + other.calls,
            self.call_ms + other.call_ms,
            {lane: self.lags[lane].plus(other.lags[lane]) for lane in LANES},
        )


@dataclass
class Lag:
    """One lane's sync lags: counts per `le` bucket (LAG_BOUNDS_MS, then +Inf), count, sum."""

    buckets: list[int] = field(default_factory=lambda: [0] * (len(LAG_BOUNDS_MS) + 1))
    n: int = 0
    ms: float = 0.0

    def plus(self, other: Lag) -> Lag:
        return Lag([a + b for a, b in zip(self.buckets, other.buckets, strict=True)],
                   self.n + other.n, self.ms + other.ms)  # fmt: skip


def _class(event: str, reason: str | None) -> str:
    """The failure class of an attempt, as core.errors names them."""
    if event == "sync_succeeded":
        return "none"
    if event == "sync_throttled":
        return "throttled"
    if event == "dead_lettered" and reason == "requires_investigation":
        return "permanent"
    return "transient"


class AuditTotals:
    """Totals over audit_log, kept up to date incrementally."""

    def __init__(self) -> None:
        self.settled_upto = 0
        self.settled = Tally()

    async def read(self, conn: rls.Conn) -> Tally:
        boundary = await rls.row(conn, "metrics_audit_settled", {"settle_s": SETTLE_S})
        upto = int(boundary["upto"]) if boundary else 0
        if upto > self.settled_upto:
            self.settled.add(await self._rows(conn, self.settled_upto, upto))
            self.settled_upto = upto
        return self.settled.plus(Tally().add(await self._rows(conn, self.settled_upto, None)))

    async def _rows(self, conn: rls.Conn, lo: int, hi: int | None) -> list[Any]:
        params = {
            "lo": lo,
            "hi": hi,
            "neg_bounds_ms": sorted(-bound for bound in BOUNDS_MS),
            "neg_lag_bounds_ms": sorted(-bound for bound in LAG_BOUNDS_MS),
            "live_priority": LIVE.lowest,
            "live": LIVE.name,
            "bulk": BULK.name,
        }
        return await rls.rows(conn, "metrics_audit_counts", params)


@dataclass
class Reading:
    """One look at the database: everything a scrape reports."""

    at: datetime
    queue: dict[str, int]
    oldest_pending_at: datetime | None
    dead_letters: dict[str, int]
    breakers: list[dict[str, Any]]
    credentials: list[dict[str, Any]]
    deliveries: dict[str, int]
    oversized_histories: int
    audit: Tally


async def read(conn: rls.Conn, totals: AuditTotals, now: datetime) -> Reading:
    def by_status(found: list[Any]) -> dict[str, int]:
        return {r["status"]: int(r["n"]) for r in found}

    oldest = await rls.row(conn, "oldest_pending")
    oversized = await rls.row(conn, "expiry_oversized_histories", {"limit": renewals.SIZE_GUARD})
    return Reading(
        at=now,
        queue=by_status(await rls.rows(conn, "queue_counts")),
        oldest_pending_at=oldest["oldest"] if oldest else None,
        dead_letters=by_status(await rls.rows(conn, "metrics_dead_letters")),
        breakers=await rls.rows(conn, "breaker_state"),
        credentials=await rls.rows(conn, "credential_health"),
        deliveries=by_status(await rls.rows(conn, "metrics_alert_deliveries")),
        oversized_histories=int(oversized["n"]) if oversized else 0,
        audit=await totals.read(conn),
    )


def families(r: Reading) -> list[Metric]:
    """A Reading as metric families."""
    deliveries = GaugeMetricFamily(
        "hlfsync_alert_deliveries", "Push deliveries by status.", labels=["status"]
    )
    for status in DELIVERY_STATUSES:
        deliveries.add_metric([status], r.deliveries.get(status, 0))
    return [
        *_queue(r),
        *_breakers(r),
        *_audit(r.audit),
        deliveries,
        GaugeMetricFamily(
            "hlfsync_renewal_history_oversized",
            f"Certifications whose renewal history holds more than {renewals.SIZE_GUARD} "
            "entries: the size guard's findings, read from the data (all processes).",
            value=r.oversized_histories,
        ),
        GaugeMetricFamily(
            "hlfsync_metrics_read_timestamp_seconds",
            "When these database-derived metrics were read.",
            value=r.at.timestamp(),
        ),
    ]


def _queue(r: Reading) -> Iterable[Metric]:
    depth = GaugeMetricFamily(
        "hlfsync_sync_queue_depth", "Sync operations by status.", labels=["status"]
    )
    for status in QUEUE_STATUSES:
        depth.add_metric([status], r.queue.get(status, 0))
    yield depth
    age = 0.0 if r.oldest_pending_at is None else (r.at - r.oldest_pending_at).total_seconds()
    yield GaugeMetricFamily(
        "hlfsync_sync_oldest_pending_age_seconds",
        "How long the oldest waiting or running operation has waited (the sync lag).",
        value=max(age, 0.0),
    )
    letters = GaugeMetricFamily(
        "hlfsync_dead_letters", "Dead letters by status.", labels=["status"]
    )
    for status in ("open", "requeued", "resolved"):
        letters.add_metric([status], r.dead_letters.get(status, 0))
    yield letters
    yield GaugeMetricFamily(
        "hlfsync_dead_letters_open",
        "Dead letters waiting for a person.",
        value=r.dead_letters.get("open", 0),
    )


def _breakers(r: Reading) -> Iterable[Metric]:
    state = GaugeMetricFamily(
        "hlfsync_breaker_state", "1 for the breaker's current state.", labels=["name", "state"]
    )
    failures = GaugeMetricFamily(
        "hlfsync_breaker_consecutive_failures", "Failures in a row.", labels=["name"]
    )
    for breaker in r.breakers:
        for name in ("closed", "open", "half_open"):
            state.add_metric([breaker["name"], name], 1.0 if breaker["state"] == name else 0.0)
        failures.add_metric([breaker["name"]], breaker["consecutive_failures"])
    yield state
    yield failures
    creds = GaugeMetricFamily(
        "hlfsync_credentials_ok", "1 when the last credential check passed.", labels=["name"]
    )
    for check in r.credentials:
        creds.add_metric([check["name"]], 1.0 if check["ok"] else 0.0)
    yield creds


def _audit(t: Tally) -> Iterable[Metric]:
    attempts = CounterMetricFamily(
        "hlfsync_sync_attempts",
        "Outcomes of sync attempts, by outcome and failure class, from the audit log.",
        labels=["outcome", "class"],
    )
    for (outcome, klass), n in sorted(t.attempts.items()):
        attempts.add_metric([outcome, klass], n)
    yield attempts
    events = CounterMetricFamily(
        "hlfsync_audit_events", "Audit log rows by event type.", labels=["event_type"]
    )
    for event, n in sorted(t.events.items()):
        events.add_metric([event], n)
    yield events
    yield HistogramMetricFamily(
        "hlfsync_dynamics_call_duration_seconds",
        "Duration of calls to Dynamics, as each attempt recorded it.",
        buckets=_cumulative(BOUNDS_MS, t.buckets),
        sum_value=t.call_ms / 1000,
    )
    lags = HistogramMetricFamily(
        "hlfsync_sync_lag_seconds",
        "From the transaction that queued a sync operation until Dynamics accepted it, by lane"
        " (live: a person's change or a force-sync; bulk: the scheduled jobs' work).",
        labels=["lane"],
    )
    for lane in LANES:
        lag = t.lags[lane]
        lags.add_metric([lane], _cumulative(LAG_BOUNDS_MS, lag.buckets), lag.ms / 1000)
    yield lags


def _cumulative(bounds_ms: tuple[float, ...], counts: list[int]) -> list[tuple[str, float]]:
    """Per-bucket counts as Prometheus' cumulative `le` buckets, bounds in seconds."""
    out: list[tuple[str, float]] = []
    total = 0
    for bound, n in zip((*bounds_ms, float("inf")), counts, strict=True):
        total += n
        out.append(("+Inf" if bound == float("inf") else str(bound / 1000), total))
    return out


class Metrics:
    """The /metrics endpoint's state: the audit totals, and a read at most every CACHE_S."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.totals = AuditTotals()
        self._lock = asyncio.Lock()
        self._read_at = float("-inf")

    async def render(self, pool: Pool) -> bytes:
        """The exposition text of the default registry, with fresh database families."""
        async with self._lock:  # one reader at a time; the others use what it read
            if time.monotonic() - self._read_at >= CACHE_S:
                async with rls.as_service(pool) as conn:
                    reading = await read(conn, self.totals, self.clock.now())
                registry.FROM_DATABASE.families = families(reading)
                self._read_at = time.monotonic()
        return generate_latest(REGISTRY)
