"""The push dispatcher gives way to people's changes: while the live loop's probe says it is
late, fewer pushes are in flight at once; once it is quick again they are won back.

A first night raises tens of thousands of pushes on the background loop of the process whose
main loop serves people's changes (and, on a small machine, on the same cores).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from hlfsync.core.clock import SystemClock
from hlfsync.db.pool import open_pool
from hlfsync.notify.base import DeliveryResult
from hlfsync.testing import make_alert
from hlfsync.worker.dispatcher import AlertDispatcher
from hlfsync.worker.lag import LagProbe

Conn = psycopg.Connection[Any]
DEVICES = 8


class HeldNotifier:
    """Delivers every push once `gate` opens; counts the pushes in flight meanwhile."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.in_flight = 0
        self.sent: list[str] = []

    async def send(
        self, token: str, data: dict[str, str], *, collapse_key: str | None = None
    ) -> Any:
        self.in_flight += 1
        try:
            await self.gate.wait()
        finally:
            self.in_flight -= 1
        self.sent.append(token)
        return DeliveryResult.delivered(f"held/{len(self.sent)}")


def _due_pushes(conn: Conn) -> None:
    """One alert, one push due to each of DEVICES devices."""
    now = datetime.now(UTC)
    alert, user = make_alert(conn, now)
    conn.execute(
        "INSERT INTO alert_deliveries (alert_id, user_id, device_token, next_attempt_at)"
        " SELECT %s, %s, 'device-' || n, %s FROM generate_series(1, %s) AS n",
        [alert, user, now - timedelta(seconds=1), DEVICES],
    )


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not condition():  # noqa: ASYNC110 - a counter the notifier keeps, no event
            await asyncio.sleep(0.005)


async def _dispatching(db_url: str, notifier: HeldNotifier, lag: LagProbe | None) -> Any:
    pool = await open_pool(db_url, max_size=2)
    dispatcher = AlertDispatcher(pool, notifier, SystemClock(), batch=DEVICES, lag=lag)
    return pool, asyncio.create_task(dispatcher.run_once())


async def test_pushes_give_way_while_the_live_loop_lags_and_come_back(
    conn: Conn, db_url: str
) -> None:
    _due_pushes(conn)
    probe = LagProbe()
    for _ in range(5):
        probe.record(0.05)  # a person's change would wait 50 ms
    notifier = HeldNotifier()
    pool, run = await _dispatching(db_url, notifier, probe)
    try:
        await _until(lambda: notifier.in_flight == DEVICES // 2)
        await asyncio.sleep(0.03)
        assert notifier.in_flight == DEVICES // 2  # halved, and no more start meanwhile
        for _ in range(5):
            probe.record(0.0)
        await _until(lambda: notifier.in_flight == DEVICES // 2 + 1)  # won back one at a time
        notifier.gate.set()
        assert await run == DEVICES
    finally:
        await pool.close()
    assert sorted(notifier.sent) == sorted(f"device-{n}" for n in range(1, DEVICES + 1))


async def test_without_a_live_loop_beside_it_every_device_is_sent_to_at_once_and_recorded(
    conn: Conn, db_url: str
) -> None:
    _due_pushes(conn)
    notifier = HeldNotifier()
    pool, run = await _dispatching(db_url, notifier, None)
    try:
        await _until(lambda: notifier.in_flight == DEVICES)
        notifier.gate.set()
        assert await run == DEVICES
    finally:
        await pool.close()
    # The batch's accepted pushes are recorded together, each as FCM named it.
    rows = conn.execute(
        "SELECT status, attempt_count, locked_until, message_name FROM alert_deliveries"
    ).fetchall()
    assert sorted(rows, key=lambda r: int(r[3].split("/")[1])) == [
        ("delivered", 1, None, f"held/{n}") for n in range(1, DEVICES + 1)
    ]
