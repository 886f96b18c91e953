"""The claim is planned for the queue as it is at each call, never from a plan cached earlier.

psycopg prepares a statement once a connection has run it five times, and PostgreSQL may then
keep one generic plan for it. A worker starts on a near-empty queue, so that plan seq-scans the
queue for every row's "nothing of this mentor is running" check; after the first expiry check
queued 49,000 removes, one bulk claim ran for 37 s under it (docs/performance.md, 14:05 UTC),
holding a core while a person's change waited. The claim and `next_due` are therefore never
prepared; a statement that is not prepared is planned with the table's current size.
"""

from __future__ import annotations

from datetime import UTC, datetime

from hlfsync.db.pool import open_pool
from hlfsync.db.queue import BULK, LIVE, OperationStore
from hlfsync.testing import prepared_statements

CALLS = 8  # more than the five after which psycopg prepares a statement


async def test_the_claim_and_next_due_are_never_prepared(db_url: str) -> None:
    pool = await open_pool(db_url, max_size=1)  # one connection: every call on the same one
    try:
        store = OperationStore(pool, worker_id="plan-test")
        now = datetime.now(UTC)
        for _ in range(CALLS):
            for lane in (LIVE, BULK):
                assert await store.claim(limit=10, now=now, lease_s=30, lane=lane) == []
                assert await store.next_due(lane) is None
        prepared = await prepared_statements(pool)
    finally:
        await pool.close()
    assert [s for s in prepared if "SKIP LOCKED" in s or "WITH RECURSIVE priorities" in s] == []
