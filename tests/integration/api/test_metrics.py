"""/metrics reports the whole system from the database: what any worker process did shows up in
any API process, counted exactly once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hlfsync import testing as f
from hlfsync.api import metrics
from hlfsync.core import outcome, renewals
from hlfsync.db.pool import open_pool
from hlfsync.db.queue import CallFacts, OperationStore


@pytest.fixture(autouse=True)
def _no_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "CACHE_S", 0.0)


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def _scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


async def _work_of_a_worker(db_url: str, conn: psycopg.Connection[Any]) -> None:
    """Three operations through the real OperationStore on its own pool: one success, one retry, one
    dead letter (with its alert), as a separate worker process would record them."""
    org = f.make_org(conn)
    chapter = f.make_chapter(conn, org)
    for _ in range(3):
        f.make_mentor(conn, org, chapters=(chapter,))
    f.make_user(conn, org, coordinates=(chapter,), token="device-1")
    conn.execute("UPDATE peer_mentors SET status = 'paused'")
    pool = await open_pool(db_url, max_size=2)
    try:
        store = OperationStore(pool, worker_id="metrics-test")
        now = datetime.now(UTC) + timedelta(seconds=1)
        ok, retry, dead = await store.claim(limit=3, now=now, lease_s=30)
        await store.record(ok, outcome.Succeeded(), now=now, facts=CallFacts(7.0, 204))
        await store.record(retry, outcome.RetryAt(now, "HTTP 503", spend_attempt=True), now=now,
                           facts=CallFacts(300.0, 503))  # fmt: skip
        await store.record(dead, outcome.DeadLettered("requires_investigation: HTTP 400",
                                                      spent=True),
                           now=now, facts=CallFacts(40.0, 400))  # fmt: skip
    finally:
        await pool.close()


async def test_metrics_show_what_another_process_did(
    client: httpx.AsyncClient, db_url: str, conn: psycopg.Connection[Any]
) -> None:
    """Queue depth, attempts by outcome and class, the call-time histogram, dead letters,
    breaker, deliveries and the renewal-history guard, all from the database."""
    began = datetime.now(UTC)
    await _work_of_a_worker(db_url, conn)
    history = json.dumps([{"schema_version": 1}] * (renewals.SIZE_GUARD + 1))
    mentor = f.make_mentor(conn, f.make_org(conn, "Other"), expires_on=datetime.now(UTC).date())
    conn.execute("UPDATE certifications SET renewal_history = %s WHERE mentor_id = %s",
                 [history, mentor])  # fmt: skip
    seen = await _scrape(client)
    assert seen[("hlfsync_sync_queue_depth", (("status", "succeeded"),))] == 1
    assert seen[("hlfsync_sync_queue_depth", (("status", "pending"),))] == 1
    assert seen[("hlfsync_sync_queue_depth", (("status", "dead_lettered"),))] == 1
    attempts = {k[1]: v for k, v in seen.items() if k[0] == "hlfsync_sync_attempts_total"}
    assert attempts == {
        (("class", "none"), ("outcome", "succeeded")): 1,
        (("class", "transient"), ("outcome", "retry_scheduled")): 1,
        (("class", "permanent"), ("outcome", "dead_lettered")): 1,
    }
    bucket = "hlfsync_dynamics_call_duration_seconds_bucket"
    assert seen[(bucket, (("le", "0.01"),))] == 1  # the 7 ms success
    assert seen[(bucket, (("le", "0.05"),))] == 2  # and the 40 ms dead letter
    assert seen[(bucket, (("le", "0.25"),))] == 2
    assert seen[(bucket, (("le", "0.5"),))] == 3  # and the 300 ms retry
    assert seen[("hlfsync_dynamics_call_duration_seconds_count", ())] == 3
    assert seen[("hlfsync_dynamics_call_duration_seconds_sum", ())] == pytest.approx(0.347)
    assert seen[("hlfsync_dead_letters_open", ())] == 1
    assert seen[("hlfsync_breaker_state", (("name", "dynamics"), ("state", "closed")))] == 1
    assert seen[("hlfsync_alert_deliveries", (("status", "pending"),))] == 1
    assert seen[("hlfsync_renewal_history_oversized", ())] == 1
    # The retried operation has waited since it was queued during this test: not 0 (no pending
    # operation), and no longer than the test has run.
    lag = seen[("hlfsync_sync_oldest_pending_age_seconds", ())]
    assert 0 < lag <= (datetime.now(UTC) - began).total_seconds()


async def test_the_sync_lag_of_each_success_by_lane(
    client: httpx.AsyncClient, db_url: str, conn: psycopg.Connection[Any]
) -> None:
    """From the transaction that queued an operation until Dynamics accepted it: a person's
    change in the live lane, the night's work in the bulk lane; an attempt that did not
    succeed is no lag, and both lanes are reported before any success."""
    quiet = await _scrape(client)
    for lane in ("live", "bulk"):
        assert quiet[("hlfsync_sync_lag_seconds_count", (("lane", lane),))] == 0
    org = f.make_org(conn)
    live, bulk, failing = (f.make_mentor(conn, org) for _ in range(3))
    conn.execute("UPDATE peer_mentors SET status = 'paused' WHERE id = ANY(%s)", [[live, failing]])
    with conn.transaction():  # as the expiry check queues its pauses
        conn.execute("SELECT set_config('hlfsync.priority', '-10', true)")
        conn.execute("UPDATE peer_mentors SET status = 'paused' WHERE id = %s", [bulk])
    queued = dict(conn.execute("SELECT mentor_id, created_at FROM sync_queue").fetchall())
    pool = await open_pool(db_url, max_size=2)
    try:
        store = OperationStore(pool, worker_id="metrics-test")
        ops = await store.claim(limit=3, now=max(queued.values()), lease_s=30)
        by = {op.mentor_id: op for op in ops}
        for mentor, after in ((live, timedelta(milliseconds=40)), (bulk, timedelta(seconds=30))):
            await store.record(by[mentor], outcome.Succeeded(), now=queued[mentor] + after,
                               facts=CallFacts(7.0, 204))  # fmt: skip
        retry_at = queued[failing] + timedelta(seconds=2)
        await store.record(by[failing], outcome.RetryAt(retry_at, "HTTP 503", spend_attempt=True),
                           now=retry_at, facts=CallFacts(300.0, 503))  # fmt: skip
    finally:
        await pool.close()
    seen = await _scrape(client)
    bucket = "hlfsync_sync_lag_seconds_bucket"
    assert seen[(bucket, (("lane", "live"), ("le", "0.025")))] == 0
    assert seen[(bucket, (("lane", "live"), ("le", "0.05")))] == 1
    assert seen[(bucket, (("lane", "live"), ("le", "+Inf")))] == 1
    assert seen[("hlfsync_sync_lag_seconds_sum", (("lane", "live"),))] == pytest.approx(0.04)
    assert seen[(bucket, (("lane", "bulk"), ("le", "15.0")))] == 0
    assert seen[(bucket, (("lane", "bulk"), ("le", "60.0")))] == 1
    assert seen[("hlfsync_sync_lag_seconds_count", (("lane", "bulk"),))] == 1
    assert seen[("hlfsync_sync_lag_seconds_sum", (("lane", "bulk"),))] == pytest.approx(30.0)


async def test_counters_count_each_audit_row_once_even_when_it_commits_late(
    client: httpx.AsyncClient, db_url: str
) -> None:
    """Old rows are added once; a row whose transaction commits after a later row's is still
    counted when it commits; repeated scrapes never count anything twice."""
    key = ("hlfsync_audit_events_total", (("event_type", "probe"),))
    insert = "INSERT INTO audit_log (event_type, occurred_at) VALUES ('probe', %s)"
    old = datetime.now(UTC) - timedelta(seconds=metrics.SETTLE_S * 2)
    with psycopg.connect(db_url, autocommit=True) as a, psycopg.connect(db_url) as late:
        a.execute(insert, [old])
        a.execute(insert, [old])
        assert (await _scrape(client))[key] == 2
        late.execute("INSERT INTO audit_log (event_type) VALUES ('probe')")  # lower id, open
        a.execute("INSERT INTO audit_log (event_type) VALUES ('probe')")
        assert (await _scrape(client))[key] == 3
        late.commit()
        assert (await _scrape(client))[key] == 4
        assert (await _scrape(client))[key] == 4
