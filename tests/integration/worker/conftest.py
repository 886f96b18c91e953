"""Engine tests: a real PostgreSQL, the real worker, a scripted Dynamics client, a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hlfsync import services, settings
from hlfsync.testing import FakeClock, RecordingNotifier, ScriptedDynamics

Build = Callable[..., Coroutine[Any, Any, services.WorkerServices]]


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock ten seconds ahead of the database, whose now() stamps the trigger's rows.

    Rows the trigger writes are then already due at the clock's start, as they would be. Ten
    seconds, not one: beside other xdist workers on a busy machine a test's set-up can take
    longer than a second, and rows written after the lead ran out were not due in round one.
    """
    return FakeClock(datetime.now(UTC) + timedelta(seconds=10))


@pytest.fixture
def dynamics(clock: FakeClock) -> ScriptedDynamics:
    return ScriptedDynamics(clock)


@pytest.fixture
def notifier() -> RecordingNotifier:
    return RecordingNotifier()


@pytest.fixture
async def build(
    db_url: str, clock: FakeClock, dynamics: ScriptedDynamics, notifier: RecordingNotifier
) -> AsyncIterator[Build]:
    """Build a worker on the test database; every one built is closed at the end."""
    built: list[services.WorkerServices] = []

    async def make(**overrides: Any) -> services.WorkerServices:
        conf = settings.load(database_url=db_url, **overrides)
        worker = await services.build_worker(
            conf, clock=clock, client=overrides.pop("client", dynamics), notifier=notifier,
            worker_id=f"test-{len(built)}",
        )  # fmt: skip
        built.append(worker)
        return worker

    yield make
    for worker in built:
        await worker.aclose()
