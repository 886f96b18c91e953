"""Reconciliation against the sandbox: drift both ways, unknown contacts, read lag, paging."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from hlfsync.db import reconcile
from hlfsync.db.pool import Pool, open_pool
from hlfsync.dynamics.factory import build_client
from hlfsync.settings import Settings
from hlfsync.testing import make_mentor, make_org
from hlfsync_sandbox.client import AdminClient
from hlfsync_sandbox.server import SandboxServer

Conn = psycopg.Connection[Any]


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[Pool]:
    """A small pool on the test database."""
    opened = await open_pool(db_url, max_size=2)
    yield opened
    await opened.close()


@pytest.fixture
async def client(sandbox: SandboxServer, db_url: str) -> AsyncIterator[Any]:
    """The production Dataverse client, pointed at the sandbox."""
    values = {k.removeprefix("HLFSYNC_").lower(): v for k, v in sandbox.env().items()}
    built = build_client(Settings(**values, database_url=db_url))
    yield built
    await built.aclose()


def _world(conn: Conn, admin: AdminClient) -> dict[str, Any]:
    """Mentors in step, drifted both ways, and a contact nobody in the app has."""
    org = make_org(conn)
    ids: dict[str, Any] = {}
    for name, status, listed in [
        ("in_step_active", "active", True),
        ("in_step_paused", "paused", False),
        ("active_not_listed", "active", False),
        ("paused_but_listed", "paused", True),
        ("inactive_but_listed", "inactive", True),
    ]:
        mentor = make_mentor(conn, org, status=status)
        contact = conn.execute(
            "SELECT dynamics_contact_id FROM peer_mentors WHERE id = %s", [mentor]
        ).fetchone()
        assert contact is not None
        ids[name] = (mentor, contact[0], listed)
    make_mentor(conn, org, contact=False)
    unknown = "11111111-2222-4333-8444-555555555555"
    admin.put_contacts(
        [{"contactid": str(c), "listed": listed} for _, c, listed in ids.values()]
        + [{"contactid": unknown, "listed": True}]
    )
    ids["unknown"] = unknown
    return ids


async def test_drift_both_ways_is_queued_and_the_rest_is_reported(
    conn: Conn, admin: AdminClient, pool: Pool, client: Any
) -> None:
    """Active-but-unlisted gets a restore, listed-but-paused a remove; findings are counted."""
    ids = _world(conn, admin)
    report = await reconcile.reconcile(
        pool, client, now=datetime.now(UTC), dry_run=False, page_size=2
    )
    queued = dict(
        conn.execute("SELECT mentor_id, operation FROM sync_queue WHERE source = 'reconcile'")
        .fetchall()
    )  # fmt: skip
    assert queued == {
        ids["active_not_listed"][0]: "restore",
        ids["paused_but_listed"][0]: "remove",
        ids["inactive_but_listed"][0]: "remove",
    }
    assert report.contacts_read == 6
    assert report.pages == 3  # pages smaller than the data
    assert (report.diverging, report.queued, report.skipped_in_flight) == (3, 3, 0)
    assert report.unknown_listed_contacts == 1
    assert report.unknown_sample == [ids["unknown"]]
    assert report.mentors_without_contact == 1


async def test_confirmations_commit_in_chunks_so_a_persons_change_waits_for_one_at_most(
    conn: Conn, admin: AdminClient, pool: Pool, client: Any
) -> None:
    """A person's status change updates its mentor's confirmation row: the confirmations commit
    a chunk of contacts at a time (one transaction per chunk, told apart by the rows' xmin), so
    that change never waits for the whole run's."""
    _world(conn, admin)
    await reconcile.reconcile(
        pool, client, now=datetime.now(UTC), dry_run=False, page_size=100, confirm_chunk=2
    )
    per_transaction = conn.execute(
        "SELECT count(*) FROM listing_confirmations WHERE confirmed_by = 'reconcile'"
        " GROUP BY xmin::text ORDER BY 1"
    ).fetchall()
    # Six contacts read (five mentors and one nobody has) in chunks of two.
    assert sorted(n for (n,) in per_transaction) == [1, 2, 2]


async def test_dry_run_changes_nothing(
    conn: Conn, admin: AdminClient, pool: Pool, client: Any
) -> None:
    """--dry-run reports the divergence and queues nothing."""
    _world(conn, admin)
    report = await reconcile.reconcile(
        pool, client, now=datetime.now(UTC), dry_run=True, page_size=100
    )
    assert report.diverging == 3
    assert report.queued == 0
    assert len(report.divergent_sample) == 3
    assert conn.execute("SELECT count(*) FROM sync_queue").fetchone() == (0,)


async def test_in_flight_or_just_synced_mentors_are_not_requeued(
    conn: Conn, admin: AdminClient, pool: Pool, client: Any
) -> None:
    """Read lag: a pending operation or one that succeeded a moment ago is left alone."""
    ids = _world(conn, admin)
    pending = ids["active_not_listed"][0]
    conn.execute("SELECT enqueue_sync(ARRAY[%s]::uuid[], 'force', 10, 'test')", [pending])
    just_done = ids["paused_but_listed"][0]
    conn.execute("SELECT enqueue_sync(ARRAY[%s]::uuid[], 'force', 10, 'test')", [just_done])
    conn.execute(
        "UPDATE sync_queue SET status = 'succeeded', finished_at = now() WHERE mentor_id = %s",
        [just_done],
    )
    report = await reconcile.reconcile(
        pool, client, now=datetime.now(UTC), dry_run=False, page_size=100
    )
    assert report.queued == 1
    assert report.skipped_in_flight == 2
    again = await reconcile.reconcile(
        pool, client, now=datetime.now(UTC), dry_run=False, page_size=100
    )
    assert again.queued == 0  # the run before queued it: no loop


async def test_an_open_dead_letter_waits_for_a_person(
    conn: Conn, admin: AdminClient, pool: Pool, client: Any
) -> None:
    """A drifted mentor with an open dead letter is not re-queued every night."""
    ids = _world(conn, admin)
    mentor = ids["active_not_listed"][0]
    conn.execute("SELECT enqueue_sync(ARRAY[%s]::uuid[], 'force', 10, 'test')", [mentor])
    conn.execute(
        "UPDATE sync_queue SET status = 'dead_lettered', finished_at = now() - interval '1 day'"
    )
    conn.execute(
        "INSERT INTO dead_letter_queue (sync_queue_id, mentor_id, operation_type, payload_json,"
        " failure_reason, attempt_count) SELECT id, mentor_id, operation, payload_json,"
        " 'requires_investigation: HTTP 400', 1 FROM sync_queue"
    )
    report = await reconcile.reconcile(
        pool, client, now=datetime.now(UTC), dry_run=False, page_size=100
    )
    assert report.queued == 2
    assert report.skipped_in_flight == 1
