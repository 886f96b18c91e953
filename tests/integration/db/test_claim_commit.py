"""A claim commits without waiting for its WAL to reach the disk; an outcome waits.

Lost in a crash, a claim leaves its row pending and the idempotent call is made again; a
success, a retry or a dead letter is the record of what happened (audit row, alert) and must
survive one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from hlfsync.core import outcome
from hlfsync.db.pool import open_pool
from hlfsync.db.queue import CallFacts, OperationStore
from hlfsync.testing import make_mentor, make_org, one

Conn = psycopg.Connection[Any]


async def test_a_claim_commits_without_waiting_for_the_flush_and_a_success_waits(
    conn: Conn, db_url: str
) -> None:
    """The transaction that claims an operation runs with synchronous_commit off; the one that
    records its success with the server's setting (on)."""
    conn.execute("CREATE TABLE commit_modes (status text, mode text)")
    conn.execute(
        "CREATE FUNCTION note_commit_mode() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " INSERT INTO commit_modes VALUES (NEW.status, current_setting('synchronous_commit'));"
        " RETURN NULL; END $$"
    )
    conn.execute(
        "CREATE TRIGGER zz_note_commit_mode AFTER UPDATE ON sync_queue"
        " FOR EACH ROW EXECUTE FUNCTION note_commit_mode()"
    )
    # The test server runs without durability; this database asks for it, as a real one has.
    name = one(conn, "SELECT current_database()")
    conn.execute(
        sql.SQL("ALTER DATABASE {} SET synchronous_commit = on").format(sql.Identifier(name))
    )
    mentor = make_mentor(conn, make_org(conn))
    conn.execute("UPDATE peer_mentors SET status = 'paused' WHERE id = %s", [mentor])
    pool = await open_pool(db_url, max_size=2)
    try:
        store = OperationStore(pool, worker_id="commit-test")
        now = datetime.now(UTC) + timedelta(seconds=10)
        (op,) = await store.claim(limit=1, now=now, lease_s=30)
        assert await store.record(op, outcome.Succeeded(), now=now, facts=CallFacts(5.0, 204))
    finally:
        await pool.close()
    modes = set(conn.execute("SELECT status, mode FROM commit_modes").fetchall())
    assert modes == {("in_progress", "off"), ("succeeded", "on")}
