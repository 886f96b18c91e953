"""The sync engine on real PostgreSQL: retries, dead letters, throttling, auth, breaker, order."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any
from uuid import uuid4

import psycopg

from hlfsync import services, settings
from hlfsync.core import outcome, pacing
from hlfsync.core.errors import AuthFailure, Permanent, Throttled, Transient
from hlfsync.testing import (
    FakeClock,
    RecordingNotifier,
    ScriptedDynamics,
    make_chapter,
    make_mentor,
    make_org,
    make_user,
)
from tests.integration.worker.conftest import Build

Conn = psycopg.Connection[Any]


def _mentor(conn: Conn, *, status: str = "active", token: str = "device-1") -> tuple[Any, Any]:
    """A mentor in a chapter whose coordinator has a device; returns (mentor, contact)."""
    org = make_org(conn)
    chapter = make_chapter(conn, org)
    make_user(conn, org, coordinates=(chapter,), token=token)
    mentor = make_mentor(conn, org, status=status, chapters=(chapter,))
    row = conn.execute("SELECT dynamics_contact_id FROM peer_mentors WHERE id = %s", [mentor])
    contact = row.fetchone()
    assert contact is not None
    return mentor, contact[0]


def _pause(conn: Conn, mentor: Any) -> None:
    conn.execute("UPDATE peer_mentors SET status = 'paused' WHERE id = %s", [mentor])


def _queue(conn: Conn, mentor: Any) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT operation, status, attempt_count, throttle_count FROM sync_queue"
        " WHERE mentor_id = %s ORDER BY id",
        [mentor],
    ).fetchall()


async def _drain(worker: Any, clock: FakeClock, *, step_s: float, rounds: int) -> None:
    for _ in range(rounds):
        await worker.worker.run_once()
        await worker.dispatcher.run_once()
        clock.advance(step_s)


async def test_5xx_retries_after_2_4_8_s_then_dead_letters_with_one_alert(
    conn: Conn, build: Build, clock: FakeClock, dynamics: ScriptedDynamics,
    notifier: RecordingNotifier,
) -> None:  # fmt: skip
    """Persistent 503: calls at +0, +2, +6, +14 s (4 in all), then a dead letter and one push."""
    mentor, contact = _mentor(conn)
    dynamics.script[contact] = [Transient("unavailable", status=503) for _ in range(10)]
    _pause(conn, mentor)
    # A breaker threshold above the attempts, so this test sees the retry policy alone.
    worker = await build(breaker_failure_threshold=10)
    start = clock.now()
    await _drain(worker, clock, step_s=1, rounds=20)
    offsets = [(at - start).total_seconds() for at, _, _ in dynamics.calls]
    assert offsets == [0, 2, 6, 14]
    assert _queue(conn, mentor) == [("remove", "dead_lettered", 4, 0)]
    letter = conn.execute(
        "SELECT failure_reason, attempt_count, operation_type, payload_json->>'contact_id', status"
        " FROM dead_letter_queue WHERE mentor_id = %s",
        [mentor],
    ).fetchone()
    assert letter is not None
    assert letter[0].startswith("retries_exhausted: HTTP 503")
    assert letter[1:] == (4, "remove", str(contact), "open")
    assert notifier.sent == [
        ("device-1", {"type": "hlf_sync_failure", "mentor_id": str(mentor), "operation": "remove"})
    ]


async def test_success_on_the_second_attempt_leaves_no_dead_letter(
    conn: Conn, build: Build, clock: FakeClock, dynamics: ScriptedDynamics,
    notifier: RecordingNotifier,
) -> None:  # fmt: skip
    """One 503 then success: two calls, succeeded, no dead letter, no alert."""
    mentor, contact = _mentor(conn)
    dynamics.script[contact] = [Transient("unavailable", status=503)]
    _pause(conn, mentor)
    worker = await build()
    await _drain(worker, clock, step_s=1, rounds=5)
    assert len(dynamics.calls) == 2
    assert _queue(conn, mentor) == [("remove", "succeeded", 2, 0)]
    assert conn.execute("SELECT count(*) FROM dead_letter_queue").fetchone() == (0,)
    assert notifier.sent == []
    assert dynamics.listed[contact] is False


async def test_4xx_is_one_call_and_requires_investigation(
    conn: Conn, build: Build, clock: FakeClock, dynamics: ScriptedDynamics
) -> None:
    """A 400 is permanent: exactly one call, then a dead letter requiring investigation."""
    mentor, contact = _mentor(conn)
    dynamics.script[contact] = [Permanent("bad field", status=400, code="0x80048d19")]
    _pause(conn, mentor)
    worker = await build()
    await _drain(worker, clock, step_s=1, rounds=10)
    assert len(dynamics.calls) == 1
    reason = conn.execute("SELECT failure_reason FROM dead_letter_queue").fetchone()
    assert reason is not None
    assert reason[0].startswith("requires_investigation: HTTP 400 0x80048d19")


async def test_429_pauses_every_call_for_retry_after_without_spending_or_tripping(
    conn: Conn, build: Build, clock: FakeClock, dynamics: ScriptedDynamics
) -> None:
    """Retry-After 30 s: no call of any operation for 30 s, breaker untouched, no attempt spent."""
    first, first_contact = _mentor(conn, token="d1")
    second, _ = _mentor(conn, token="d2")
    dynamics.script[first_contact] = [Throttled("slow down", retry_after_s=30)]
    _pause(conn, first)
    worker = await build(worker_concurrency=1)
    await worker.worker.run_once()
    throttled_at = clock.now()
    _pause(conn, second)
    for _ in range(29):
        clock.advance(1)
        await worker.worker.run_once()
    assert len(dynamics.calls) == 1  # nothing at all went out during the pause
    breaker = conn.execute("SELECT state, consecutive_failures FROM circuit_breakers").fetchone()
    assert breaker == ("closed", 0)
    clock.advance(1.5)
    await worker.worker.run_once()
    assert {c for _, c, _ in dynamics.calls[1:]} == {first_contact, *(
        r[0] for r in conn.execute(
            "SELECT dynamics_contact_id FROM peer_mentors WHERE id = %s", [second]
        ).fetchall()
    )}  # fmt: skip
    assert all(at >= throttled_at + timedelta(seconds=30) for at, _, _ in dynamics.calls[1:])
    assert _queue(conn, first) == [("remove", "succeeded", 1, 1)]


async def test_401_spends_no_attempt_holds_the_operation_and_alerts_once(
    conn: Conn, build: Build, clock: FakeClock, dynamics: ScriptedDynamics
) -> None:
    """Auth failure: operation pending and untouched, breaker held open, one admin alert."""
    org = make_org(conn)
    make_user(conn, org, admin=True, token="admin-device")
    mentor, contact = _mentor(conn)
    dynamics.script[contact] = [AuthFailure("invalid_client", status=401) for _ in range(5)]
    _pause(conn, mentor)
    worker = await build(breaker_cooldown=60)
    await _drain(worker, clock, step_s=30, rounds=8)  # several cool-downs, several probes
    assert _queue(conn, mentor) == [("remove", "pending", 0, 0)]
    assert conn.execute("SELECT state, auth_failed FROM circuit_breakers").fetchone() == (
        "open", True,
    )  # fmt: skip
    alerts = conn.execute("SELECT kind FROM alerts WHERE kind = 'auth_failure'").fetchall()
    assert alerts == [("auth_failure",)]
    assert conn.execute("SELECT count(*) FROM dead_letter_queue").fetchone() == (0,)
    # At most one probe per cool-down reached Dynamics.
    assert 2 <= len(dynamics.calls) <= 5


async def test_breaker_opens_after_3_failures_blocks_calls_then_one_probe_closes_it(
    conn: Conn, build: Build, clock: FakeClock, dynamics: ScriptedDynamics
) -> None:
    """CLOSED->OPEN after 3 failures; no call while open; one probe after 60 s; success closes."""
    mentors = [_mentor(conn, token=f"d{i}") for i in range(5)]
    dynamics.script[None] = [Transient("down", status=503) for _ in range(3)]
    for mentor, _ in mentors:
        _pause(conn, mentor)
    worker = await build(worker_concurrency=1, retry_max_retries=10)
    for _ in range(3):
        await worker.worker.run_once()
    assert conn.execute("SELECT state FROM circuit_breakers").fetchone() == ("open",)
    calls = len(dynamics.calls)
    assert calls == 3
    for _ in range(59):
        clock.advance(1)
        await worker.worker.run_once()
    assert len(dynamics.calls) == calls  # nothing while open
    clock.advance(1.5)
    await worker.worker.run_once()
    assert conn.execute("SELECT state FROM circuit_breakers").fetchone() == ("closed",)
    await _drain(worker, clock, step_s=1, rounds=30)
    assert conn.execute(
        "SELECT count(*) FROM sync_queue WHERE status = 'succeeded'"
    ).fetchone() == (5,)
    events = conn.execute(
        "SELECT details->>'from', details->>'to' FROM audit_log"
        " WHERE event_type = 'breaker_transition' ORDER BY id"
    ).fetchall()
    assert events == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    assert conn.execute("SELECT count(*) FROM alerts WHERE kind = 'breaker_open'").fetchone() == (
        1,
    )  # fmt: skip


async def test_a_failed_probe_reopens_with_a_fresh_cooldown(
    conn: Conn, build: Build, clock: FakeClock, dynamics: ScriptedDynamics
) -> None:
    """OPEN->HALF_OPEN->OPEN: the failed probe restarts the cool-down."""
    mentor, contact = _mentor(conn)
    dynamics.script[contact] = [Transient("down", status=503) for _ in range(4)]
    _pause(conn, mentor)
    worker = await build(retry_max_retries=10, retry_base_delay=1, breaker_cooldown=60)
    await _drain(worker, clock, step_s=1, rounds=10)
    assert conn.execute("SELECT state FROM circuit_breakers").fetchone() == ("open",)
    clock.advance(60)
    await worker.worker.run_once()  # the probe fails
    state = conn.execute("SELECT state, opened_at FROM circuit_breakers").fetchone()
    assert state is not None
    assert state[0] == "open"
    assert state[1] == clock.now()


async def test_a_dead_letter_for_one_mentor_does_not_delay_another(
    conn: Conn, build: Build, clock: FakeClock, dynamics: ScriptedDynamics
) -> None:
    """A mentor whose calls fail for good never holds up a healthy mentor."""
    bad, bad_contact = _mentor(conn, token="d1")
    good, good_contact = _mentor(conn, token="d2")
    dynamics.script[bad_contact] = [Permanent("no", status=404)]
    _pause(conn, bad)
    _pause(conn, good)
    worker = await build()
    await worker.worker.run_once()
    assert dynamics.listed == {good_contact: False}
    assert _queue(conn, good) == [("remove", "succeeded", 1, 0)]
    assert _queue(conn, bad) == [("remove", "dead_lettered", 1, 0)]


async def test_sync_disabled_holds_then_replays_in_order(
    conn: Conn, build: Build, clock: FakeClock, dynamics: ScriptedDynamics
) -> None:
    """With the flag off nothing is sent or dropped; switched on, operations replay in order."""
    pairs = [_mentor(conn, token=f"d{i}") for i in range(4)]
    for mentor, _ in pairs:
        _pause(conn, mentor)
    off = await build(sync_enabled=False)
    assert await off.worker.run_once() == 0
    assert dynamics.calls == []
    assert conn.execute("SELECT count(*) FROM sync_queue WHERE status = 'pending'").fetchone() == (
        4,
    )
    on = await build(sync_enabled=True, worker_concurrency=1)
    await on.worker.run_once()
    assert [c for _, c, _ in dynamics.calls] == [c for _, c in pairs]


async def test_remove_then_restore_queued_fast_ends_restored(
    conn: Conn, build: Build, clock: FakeClock, dynamics: ScriptedDynamics
) -> None:
    """A pause and an un-pause before the worker runs: the listing ends restored."""
    mentor, contact = _mentor(conn)
    _pause(conn, mentor)
    conn.execute("UPDATE peer_mentors SET status = 'active' WHERE id = %s", [mentor])
    worker = await build()
    await worker.worker.run_once()
    assert dynamics.listed[contact] is True
    assert [op for _, _, op in dynamics.calls] == ["restore"]


async def test_an_adapter_bug_dead_letters_as_poison_and_the_worker_goes_on(
    conn: Conn, build: Build, clock: FakeClock, dynamics: ScriptedDynamics
) -> None:
    """An unexpected exception in the adapter dead-letters the operation; others still run."""
    bad, bad_contact = _mentor(conn, token="d1")
    good, good_contact = _mentor(conn, token="d2")
    dynamics.script[bad_contact] = [KeyError("boom")]
    _pause(conn, bad)
    _pause(conn, good)
    worker = await build()
    await worker.worker.run_once()
    reason = conn.execute("SELECT failure_reason FROM dead_letter_queue").fetchone()
    assert reason is not None
    assert reason[0].startswith("requires_investigation: poison: KeyError")
    assert dynamics.listed == {good_contact: False}


async def test_a_mentor_without_contact_id_is_held_unlinked_without_a_call(
    conn: Conn, build: Build, clock: FakeClock, dynamics: ScriptedDynamics
) -> None:
    """No contact id and no alternate key: nothing to call, no dead letter, no attempt spent;
    the operation waits as `unlinked` and runs as soon as the mentor is linked."""
    org = make_org(conn)
    mentor = make_mentor(conn, org, contact=False)
    _pause(conn, mentor)
    worker = await build()
    await worker.worker.run_once()
    assert dynamics.calls == []
    assert conn.execute("SELECT count(*) FROM dead_letter_queue").fetchone() == (0,)
    row = conn.execute("SELECT status, attempt_count, last_error FROM sync_queue").fetchone()
    assert row is not None
    assert row[:2] == ("pending", 0)
    assert str(row[2]).startswith("unlinked: mentor has no Dynamics contact id")
    contact = uuid4()
    conn.execute("UPDATE peer_mentors SET dynamics_contact_id = %s WHERE id = %s",
                 [contact, mentor])  # fmt: skip
    clock.advance(30)  # the link makes it due at the database's now, well before the hour
    await worker.worker.run_once()
    assert dynamics.listed == {contact: False}


async def test_an_expired_lease_is_rescued_and_completes_once(
    conn: Conn, build: Build, clock: FakeClock, dynamics: ScriptedDynamics
) -> None:
    """A worker that vanished mid-call: after the lease the operation runs again, one success."""
    mentor, _contact = _mentor(conn)
    _pause(conn, mentor)
    dead = await build(worker_lease=30)
    claimed = await dead.worker.ctx.store.claim(limit=10, now=clock.now(), lease_s=30)
    assert len(claimed) == 1  # ...and this worker dies here, holding the lease
    alive = await build(worker_lease=30)
    assert await alive.worker.run_once() == 0  # still leased: nobody else touches it
    clock.advance(31)
    assert await alive.worker.run_once() == 1
    assert _queue(conn, mentor) == [("remove", "succeeded", 2, 0)]
    events = [r[0] for r in conn.execute(
        "SELECT event_type FROM audit_log WHERE mentor_id = %s ORDER BY id", [mentor]
    ).fetchall()]  # fmt: skip
    assert events == ["status_changed", "lease_expired", "sync_succeeded"]
    # The late worker's write is refused: the claim it holds is no longer the row's.
    assert (
        await dead.worker.ctx.store.record(claimed[0], outcome.Succeeded(), now=clock.now())
        is False
    )


async def test_two_workers_never_process_the_same_row(
    conn: Conn, build: Build, clock: FakeClock, dynamics: ScriptedDynamics
) -> None:
    """Two workers claiming at once split the queue: every operation is called exactly once."""
    org = make_org(conn)
    mentors = [make_mentor(conn, org) for _ in range(60)]
    conn.execute("UPDATE peer_mentors SET status = 'paused'")
    one, two = await build(worker_concurrency=7), await build(worker_concurrency=5)
    await asyncio.gather(one.worker.run_once(), two.worker.run_once())
    contacts = [c for _, c, _ in dynamics.calls]
    assert len(contacts) == len(set(contacts)) == len(mentors)
    assert conn.execute(
        "SELECT count(*) FROM sync_queue WHERE status = 'succeeded' AND attempt_count = 1"
    ).fetchone() == (60,)


async def test_a_retry_racing_a_status_change_waits_and_supersedes_itself(
    conn: Conn, build: Build, clock: FakeClock, db_url: str
) -> None:
    """A retry while a status change for the same mentor is uncommitted waits for it, then
    yields to the newer operation: no error on either side, one operation left waiting."""
    mentor, _ = _mentor(conn)
    _pause(conn, mentor)
    worker = await build()
    (job,) = await worker.worker.ctx.store.claim(limit=1, now=clock.now(), lease_s=60)
    with psycopg.connect(db_url) as app:
        app.execute("UPDATE peer_mentors SET status = 'active' WHERE id = %s", [mentor])
        retry = asyncio.create_task(
            worker.worker.ctx.store.record(
                job, outcome.RetryAt(clock.now(), "HTTP 503", spend_attempt=True), now=clock.now()
            )
        )
        await asyncio.sleep(0.2)
        assert not retry.done()  # waiting for the app's transaction
        app.commit()
    assert await retry is True
    assert _queue(conn, mentor) == [("remove", "superseded", 1, 0), ("restore", "pending", 0, 0)]


async def test_the_worker_scheduler_runs_every_job_once_per_slot(
    conn: Conn, db_url: str, build: Build, clock: FakeClock, dynamics: ScriptedDynamics
) -> None:
    """At start each job's latest slot runs once (health, reconcile, expiry, compensation);
    a second pass in the same slots runs nothing; all outcomes are recorded."""
    _mentor(conn)
    worker = await build()
    scheduler = services.build_scheduler(
        settings.load(database_url=db_url), worker.pool, clock, worker.client,
        worker.worker.ctx.breaker, notifier=worker.notifier,
    )  # fmt: skip
    first = await scheduler.run_once()
    assert {r.job for r in first} == {"health_check", "reconcile", "expiry_check", "compensation"}
    assert await scheduler.run_once() == []
    rows = conn.execute("SELECT job, status FROM scheduled_runs ORDER BY job").fetchall()
    assert rows == [
        ("compensation", "succeeded"),
        ("expiry_check", "succeeded"),
        ("health_check", "succeeded"),
        ("reconcile", "succeeded"),
    ]
    assert conn.execute("SELECT ok FROM credential_health").fetchone() == (True,)


# Batches: a backlog sent through `apply_many` (one `$batch` on Dataverse).


def _batch_world(conn: Conn, count: int, *, start: int = 0) -> list[tuple[Any, Any]]:
    pairs = [_mentor(conn, token=f"device-{i}") for i in range(start, start + count)]
    for mentor, _ in pairs:
        _pause(conn, mentor)
    return pairs


async def test_a_batch_settles_each_change_alone(
    conn: Conn, build: Build, clock: FakeClock
) -> None:
    """In one batch: a success, a 503 (retried, one attempt spent), a 404 (dead letter at once),
    a change with no contact id (dead letter, never sent); the breaker hears one success."""
    pairs = _batch_world(conn, 3)
    org = make_org(conn)
    no_contact = make_mentor(conn, org, contact=False)
    _pause(conn, no_contact)
    client = ScriptedDynamics(clock, max_batch=10)
    client.script[pairs[1][1]] = [Transient("HTTP 503", status=503)]
    client.script[pairs[2][1]] = [Permanent("HTTP 404 contact not found", status=404)]
    worker = await build(client=client, worker_concurrency=1)
    await worker.worker.run_once()
    assert client.batches == [3]
    assert _queue(conn, pairs[0][0]) == [("remove", "succeeded", 1, 0)]
    assert _queue(conn, pairs[1][0]) == [("remove", "pending", 1, 0)]
    assert _queue(conn, pairs[2][0]) == [("remove", "dead_lettered", 1, 0)]
    assert _queue(conn, no_contact) == [("remove", "pending", 0, 0)]  # held as unlinked
    assert conn.execute("SELECT state, consecutive_failures FROM circuit_breakers").fetchone() in (
        None, ("closed", 0),
    )  # fmt: skip
    clock.advance(2)
    await worker.worker.run_once()
    assert _queue(conn, pairs[1][0]) == [("remove", "succeeded", 2, 0)]


async def test_an_adapter_bug_in_a_batch_dead_letters_that_batch_as_poison(
    conn: Conn, build: Build, clock: FakeClock
) -> None:
    """apply_many raising (or answering the wrong number of results) is a bug in the adapter:
    the batch's operations dead-letter as poison, and the worker goes on."""

    class Broken(ScriptedDynamics):
        async def apply_many(self, changes: Any) -> list[Exception | None]:
            self.batches.append(len(changes))
            return [None]  # one result for several changes

    pairs = _batch_world(conn, 3)
    client = Broken(clock, max_batch=10)
    worker = await build(client=client, worker_concurrency=1)
    await worker.worker.run_once()
    reasons = conn.execute("SELECT failure_reason FROM dead_letter_queue").fetchall()
    assert len(reasons) == 3
    assert all(r[0].startswith("requires_investigation: poison: RuntimeError") for r in reasons)
    assert client.listed == {}
    mentor, contact = _mentor(conn, token="after")
    _pause(conn, mentor)
    await worker.worker.run_once()
    assert client.listed == {contact: False}  # a lone change goes alone, through apply
    assert len(pairs) == 3


async def test_while_half_open_only_one_change_goes_as_the_probe(
    conn: Conn, build: Build, clock: FakeClock
) -> None:
    """After the cool-down a batch-sending worker sends exactly one change as the probe; the
    rest follow once it closes the circuit."""
    _batch_world(conn, 12)
    client = ScriptedDynamics(clock, max_batch=4)
    client.script[None] = [Transient("HTTP 503", status=503)] * 12  # three batches' worth
    worker = await build(client=client, worker_concurrency=1, retry_max_retries=10)
    await worker.worker.run_once()
    assert conn.execute("SELECT state FROM circuit_breakers").fetchone() == ("open",)
    client.script[None] = []
    calls_before = len(client.calls)
    clock.advance(61)
    await worker.worker.run_once()
    # One probe, alone (through apply); once it closed the circuit, the other 11 in batches.
    assert len(client.calls) == calls_before + 12
    assert client.batches[:3] == [4, 4, 4]
    assert sum(client.batches[3:]) == 11
    assert conn.execute("SELECT state FROM circuit_breakers").fetchone() == ("closed",)
    assert conn.execute(
        "SELECT count(*) FROM sync_queue WHERE status = 'succeeded'"
    ).fetchone() == (12,)
    assert conn.execute("SELECT count(*) FROM dead_letter_queue").fetchone() == (0,)


async def test_a_loop_that_spent_its_share_of_the_window_fills_its_batches(
    conn: Conn, build: Build, clock: FakeClock
) -> None:
    """Small calls in parallel until the loop has sent its share of Dataverse's requests for
    the window (service protection counts requests, a `$batch` as one); then full batches
    until the window has room again."""
    _batch_world(conn, 10)
    client = ScriptedDynamics(clock, max_batch=10)
    worker = await build(client=client, worker_concurrency=5)
    worker.worker.requests = pacing.RequestWindow(budget=5)
    await worker.worker.run_once()
    assert client.batches == [2] * 5  # shared out over 5 slots: five requests, the budget
    _batch_world(conn, 25, start=10)
    await worker.worker.run_once()
    assert sorted(client.batches[5:]) == [5, 10, 10]  # budget spent: full batches
    clock.advance(pacing.WINDOW)
    _batch_world(conn, 10, start=35)
    await worker.worker.run_once()
    assert client.batches[8:] == [2] * 5  # the window has room again: shared out


async def test_a_throttle_inside_a_batch_pauses_all_then_batches_are_filled(
    conn: Conn, build: Build, clock: FakeClock
) -> None:
    """One change of a batch answered 429 Retry-After 30: every call stops for 30 s (the other
    changes still count as done), and after it the worker fills its batches instead of
    sharing them out over its slots, since requests are what Dynamics rations."""
    _batch_world(conn, 10)
    client = ScriptedDynamics(clock, max_batch=10)
    client.script[None] = [Throttled("HTTP 429", retry_after_s=30, status=429)]
    worker = await build(client=client, worker_concurrency=5)
    await worker.worker.run_once()
    assert client.batches == [2] * 5  # shared out over 5 slots
    done = conn.execute("SELECT count(*) FROM sync_queue WHERE status = 'succeeded'").fetchone()
    assert done == (9,)
    _batch_world(conn, 24, start=10)
    clock.advance(29)
    await worker.worker.run_once()
    assert client.batches == [2] * 5  # paused: nothing sent
    clock.advance(2)
    await worker.worker.run_once()
    assert sorted(client.batches[5:]) == [5, 10, 10]  # 25 waiting, in full batches
    rows = conn.execute(
        "SELECT status, attempt_count, throttle_count, count(*) FROM sync_queue"
        " GROUP BY 1, 2, 3 ORDER BY 3"
    ).fetchall()
    assert rows == [("succeeded", 1, 0, 33), ("succeeded", 1, 1, 1)]
