"""The worker's background loop: what it runs belongs to its own thread and loop, stops with the
worker, and when it fails the whole worker stops with one line instead of running on without it."""

from __future__ import annotations

import asyncio
import os
import sys
import threading

import pytest

from hlfsync.worker.background import (
    Body,
    Build,
    Close,
    Outcome,
    run_beside,
)


def _build(
    seen: dict[str, object], *, fail_build: bool = False, fail_run: bool = False,
    return_early: bool = False,
) -> Build:  # fmt: skip
    async def build() -> tuple[Body, Close]:
        seen["built_on"] = threading.current_thread().name
        seen["loop"] = asyncio.get_running_loop()
        if fail_build:
            raise OSError("connection refused\nsecond line")

        async def run(stop: asyncio.Event) -> None:
            if fail_run:
                raise ValueError("the bulk lane broke")
            if return_early:
                return
            await stop.wait()
            seen["stopped"] = True

        async def close() -> None:
            seen["closed"] = True

        return run, close

    return build


async def test_it_runs_on_its_own_thread_and_loop_until_the_worker_stops() -> None:
    seen: dict[str, object] = {}
    stop, outcome = asyncio.Event(), Outcome()
    task = asyncio.create_task(run_beside(_build(seen), stop, outcome))
    for _ in range(200):
        if "loop" in seen:
            break
        await asyncio.sleep(0.005)
    assert seen["built_on"] == "hlfsync-background"
    assert seen["loop"] is not asyncio.get_running_loop()
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert seen["stopped"] is True
    assert seen["closed"] is True
    assert outcome.error is None


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("fail_build", "OSError: connection refused"),
        ("fail_run", "ValueError: the bulk lane broke"),
        ("return_early", "RuntimeError: the background loop ended before it was stopped"),
    ],
)
async def test_a_failure_stops_the_worker_with_one_line(kind: str, expected: str) -> None:
    seen: dict[str, object] = {}
    stop, outcome = asyncio.Event(), Outcome()
    build = _build(seen, **{kind: True})
    await asyncio.wait_for(run_beside(build, stop, outcome), timeout=5)
    assert stop.is_set()
    assert outcome.error == expected
    assert kind == "fail_build" or seen["closed"] is True


async def test_the_background_thread_runs_nice_steps_below_the_live_loop() -> None:
    """On Linux each thread has its own nice value: the bulk work yields the cores to the live
    loop's thread, which keeps its own priority."""
    seen: dict[str, object] = {}
    me = threading.get_native_id()
    before = os.getpriority(os.PRIO_PROCESS, me)

    def priority(build: Build) -> Build:
        async def with_priority() -> tuple[Body, Close]:
            seen["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
            return await build()

        return with_priority

    stop, outcome = asyncio.Event(), Outcome()
    task = asyncio.create_task(run_beside(priority(_build(seen)), stop, outcome, nice=7))
    for _ in range(200):
        if "loop" in seen:
            break
        await asyncio.sleep(0.005)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    expected = min(19, before + 7) if sys.platform == "linux" else before
    assert seen["nice"] == expected
    assert os.getpriority(os.PRIO_PROCESS, me) == before
