"""A round of the push dispatcher: its pushes go out together (devices in parallel, within
their lease, sharing one token request) and the accepted ones are recorded in one statement.

A first night raises 115,000 pushes; recorded one transaction each, they cost the database two
commits per push and the dispatcher a millisecond of CPU (docs/performance.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import structlog

from hlfsync import services
from hlfsync.core.clock import SystemClock
from hlfsync.db.pool import open_pool
from hlfsync.notify.base import DeliveryResult
from hlfsync.notify.log import fingerprint
from hlfsync.settings import Settings
from hlfsync.testing import make_alert
from hlfsync.worker.dispatcher import AlertDispatcher
from hlfsync_sandbox.client import AdminClient
from hlfsync_sandbox.server import SandboxServer

Conn = psycopg.Connection[Any]
BATCH = 8


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


def _due_pushes(conn: Conn, devices: int) -> None:
    """One alert, one push due to each of `devices` devices."""
    now = datetime.now(UTC)
    alert, user = make_alert(conn, now)
    conn.execute(
        "INSERT INTO alert_deliveries (alert_id, user_id, device_token, next_attempt_at)"
        " SELECT %s, %s, 'device-' || n, %s FROM generate_series(1, %s) AS n",
        [alert, user, now - timedelta(seconds=1), devices],
    )


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not condition():  # noqa: ASYNC110 - a counter the notifier keeps, no event
            await asyncio.sleep(0.005)


async def test_a_round_sends_to_every_device_at_once_and_records_them_together(
    conn: Conn, db_url: str
) -> None:
    _due_pushes(conn, BATCH)
    notifier = HeldNotifier()
    pool = await open_pool(db_url, max_size=2)
    try:
        dispatcher = AlertDispatcher(pool, notifier, SystemClock(), batch=BATCH)
        with structlog.testing.capture_logs() as logs:
            run = asyncio.create_task(dispatcher.run_once())
            await _until(lambda: notifier.in_flight == BATCH)
            notifier.gate.set()
            assert await run == BATCH
    finally:
        await pool.close()
    # One line a push, naming the device by fingerprint only.
    lines = [e for e in logs if e["event"] == "alert_delivered"]
    assert {(e["log_level"], e["device"]) for e in lines} == {
        ("info", fingerprint(f"device-{n}")) for n in range(1, BATCH + 1)
    }
    assert len(lines) == BATCH
    assert "device-" not in repr(logs)
    rows = conn.execute(
        "SELECT status, attempt_count, locked_until, message_name FROM alert_deliveries"
    ).fetchall()
    assert sorted(rows, key=lambda r: int(r[3].split("/")[1])) == [
        ("delivered", 1, None, f"held/{n}") for n in range(1, BATCH + 1)
    ]


async def test_worker_once_sends_every_due_push_not_one_round(
    conn: Conn, db_url: str, sandbox: SandboxServer, admin: AdminClient
) -> None:
    """`worker --once` (cron every minute) drains the pushes due, round after round: one round
    of 50 a run would leave a first night's 115,000 to go out over days."""
    _due_pushes(conn, 3 * 50 + 7)
    values = {k.removeprefix("HLFSYNC_").lower(): v for k, v in sandbox.env().items()}
    settings = Settings(**values | {"database_url": db_url})
    handled, sent = await services.worker_once(settings)
    assert (handled, sent) == (0, 3 * 50 + 7)
    tokens = [m["token"] for m in admin.fcm_messages()]
    assert sorted(tokens) == sorted(f"device-{n}" for n in range(1, 3 * 50 + 8))
