"""One bulk lane across the workers: of two processes' background loops, one runs the bulk lane;
when it stops, the other takes over; the lock is the database's, so nothing else coordinates."""

from __future__ import annotations

import asyncio

from hlfsync.worker import lanes


async def test_one_worker_runs_the_bulk_lane_and_another_takes_over_when_it_stops(
    db_url: str,
) -> None:
    running: list[str] = []
    first_stop, second_stop = asyncio.Event(), asyncio.Event()

    def lane(name: str) -> lanes.Body:
        async def body(stop: asyncio.Event) -> None:
            running.append(name)
            await stop.wait()
            running.remove(name)

        return body

    key = 0x7465_7374_6C61_6E65  # this test's own lock
    first = asyncio.create_task(
        lanes.run_when_holding(db_url, lane("first"), first_stop, key=key, retry_s=0.02)
    )
    for _ in range(200):
        if running:
            break
        await asyncio.sleep(0.01)
    second = asyncio.create_task(
        lanes.run_when_holding(db_url, lane("second"), second_stop, key=key, retry_s=0.02)
    )
    await asyncio.sleep(0.2)  # ten of the second's tries
    assert running == ["first"]
    first_stop.set()
    await first
    for _ in range(200):
        if running == ["second"]:
            break
        await asyncio.sleep(0.01)
    assert running == ["second"]
    second_stop.set()
    await second
