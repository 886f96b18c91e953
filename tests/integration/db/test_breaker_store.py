"""The breaker's row holds exactly the pure breaker's snapshot, decided under its lock.

`core.breaker` is the one home of the breaker's rules; these tests hold what PostgreSQL adds to
it (the row's CHECKs, the row lock, the reset written with a success) against it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from hlfsync.core import breaker, outcome
from hlfsync.db.breaker import DynamicsCircuitBreaker
from hlfsync.db.pool import open_pool
from hlfsync.db.queue import CallFacts, OperationStore
from hlfsync.testing import make_mentor, make_org

Conn = psycopg.Connection[Any]
S = timedelta(seconds=1)
CFG = breaker.BreakerConfig()
A = breaker.Admission
DAY = datetime(2025, 1, 6, tzinfo=UTC)
COLUMNS = ("state", "consecutive_failures", "opened_at", "probe_started_at", "paused_until",
           "auth_failed")  # fmt: skip


def _store(conn: Conn, snap: breaker.BreakerSnapshot, **extra: Any) -> None:
    values = dataclasses.asdict(snap) | {"state": snap.state.value} | extra
    sets = ", ".join(f"{column} = %({column})s" for column in values)
    conn.execute(f"UPDATE circuit_breakers SET {sets} WHERE name = 'dynamics'".encode(), values)


def _read(conn: Conn) -> breaker.BreakerSnapshot:
    row = conn.execute(
        f"SELECT {', '.join(COLUMNS)} FROM circuit_breakers WHERE name = 'dynamics'".encode()
    ).fetchone()
    assert row is not None
    return breaker.BreakerSnapshot(*row)


def test_the_stored_states_are_the_core_states(conn: Conn) -> None:
    """circuit_breakers.state admits exactly CircuitState's values, no more and no fewer."""
    definition = conn.execute(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conname = 'circuit_breakers_state_check'"
    ).fetchone()
    assert definition is not None
    assert set(re.findall(r"'(\w+)'::text", definition[0])) == {
        s.value for s in breaker.CircuitState
    }


IMPOSSIBLE = [
    {"consecutive_failures": -1},
    {"state": breaker.CircuitState.OPEN},  # no opened_at
    {"state": breaker.CircuitState.HALF_OPEN},  # no opened_at
    {"probe_started_at": DAY},  # closed, yet probing
    {"auth_failed": True},  # closed, yet held
]


@pytest.mark.parametrize("fields", IMPOSSIBLE)
def test_the_row_refuses_what_the_snapshot_refuses(conn: Conn, fields: dict[str, Any]) -> None:
    """Each snapshot BreakerSnapshot rejects is a row the table rejects too (migration 0018)."""
    with pytest.raises(ValueError, match=r"must be|needs|cannot"):
        dataclasses.replace(breaker.BreakerSnapshot(), **fields)
    values = {k: v.value if isinstance(v, breaker.CircuitState) else v for k, v in fields.items()}
    sets = ", ".join(f"{column} = %({column})s" for column in values)
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(f"UPDATE circuit_breakers SET {sets}".encode(), values)


def test_a_hold_reason_needs_a_hold(conn: Conn) -> None:
    """A circuit not held (auth_failed false) cannot say why it is held."""
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("UPDATE circuit_breakers SET hold_reason = 'contract'")


async def _succeed_one(conn: Conn, db_url: str) -> None:
    """Claim one operation and record its success through the store, as a worker does."""
    mentor = make_mentor(conn, make_org(conn))
    conn.execute("UPDATE peer_mentors SET status = 'paused' WHERE id = %s", [mentor])
    pool = await open_pool(db_url, max_size=2)
    try:
        store = OperationStore(pool, worker_id="breaker-test")
        now = datetime.now(UTC) + S
        (op,) = await store.claim(limit=1, now=now, lease_s=30)
        assert await store.record(op, outcome.Succeeded(), now=now, facts=CallFacts(5.0, 204))
    finally:
        await pool.close()


SNAPSHOTS = [
    breaker.BreakerSnapshot(consecutive_failures=2),
    breaker.BreakerSnapshot(consecutive_failures=1, paused_until=datetime(2099, 1, 1, tzinfo=UTC)),
    breaker.BreakerSnapshot(
        state=breaker.CircuitState.OPEN, consecutive_failures=3,
        opened_at=DAY,
    ),
    breaker.BreakerSnapshot(
        state=breaker.CircuitState.HALF_OPEN, consecutive_failures=3, auth_failed=True,
        opened_at=DAY, probe_started_at=DAY + 60 * S,
    ),
]  # fmt: skip


@pytest.mark.parametrize("before", SNAPSHOTS)
async def test_a_success_writes_on_success_for_a_closed_circuit_and_nothing_else(
    conn: Conn, db_url: str, before: breaker.BreakerSnapshot
) -> None:
    """`succeed_many` zeroes a closed circuit's failure count as `core.breaker.on_success` would,
    and leaves any other circuit alone: the worker reports those successes through the breaker
    (`success_closes`), under its lock."""
    _store(conn, before)
    await _succeed_one(conn, db_url)
    if breaker.success_closes(before, A.ALLOW):
        assert _read(conn) == before
    else:
        assert _read(conn) == breaker.on_success(before, datetime.now(UTC)).snapshot


async def test_racing_workers_get_one_probe_between_them(conn: Conn, db_url: str) -> None:
    """Eight workers admitting at once on an open circuit past its cool-down: one PROBE, seven
    DENY_PROBING, whatever their local views said."""
    now = datetime.now(UTC)
    _store(conn, breaker.BreakerSnapshot(state=breaker.CircuitState.OPEN, opened_at=now - 61 * S))
    pool = await open_pool(db_url, max_size=8, min_size=8)
    try:
        workers = [DynamicsCircuitBreaker(pool, CFG) for _ in range(8)]
        for worker in workers:
            await worker.refresh()
        answers = await asyncio.gather(*(worker.admit(now) for worker in workers))
    finally:
        await pool.close()
    assert sorted(answers) == sorted([A.PROBE] + [A.DENY_PROBING] * 7)
    assert _read(conn).state is breaker.CircuitState.HALF_OPEN


async def test_a_new_process_decides_as_the_old_one(conn: Conn, db_url: str) -> None:
    """A breaker built afresh on the stored row makes the decisions the first one would."""
    now = datetime.now(UTC)
    pool = await open_pool(db_url, max_size=2)
    try:
        first = DynamicsCircuitBreaker(pool, CFG)
        for _ in range(CFG.failure_threshold):
            await first.on_failure(now, "HTTP 503")
        second = DynamicsCircuitBreaker(pool, CFG)
        await second.refresh()
        assert await second.admit(now + 59 * S) is A.DENY_OPEN
        assert second.wait_until(now + 59 * S) == now + CFG.cooldown
        assert await second.admit(now + 60 * S) is A.PROBE
        assert await first.admit(now + 60 * S) is A.DENY_PROBING
        await second.on_success(now + 61 * S)
        assert _read(conn) == breaker.BreakerSnapshot()
    finally:
        await pool.close()
