"""Reads the status snapshot (queue, breaker, dead letters, schedules, credentials) in one go."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

from hlfsync.core.status import Snapshot
from hlfsync.db import migrate
from hlfsync.db.queries import q


def read(conn: psycopg.Connection[Any]) -> Snapshot:
    pending = [m.name for m in migrate.pending(conn)]
    if pending and migrate.applied_versions(conn) == {}:
        return Snapshot({}, None, 0, [], [], [], pending)
    with conn.cursor(row_factory=dict_row) as cur:
        queue = {row["status"]: row["n"] for row in cur.execute(q("queue_counts")).fetchall()}
        oldest = cur.execute(q("oldest_pending")).fetchone()
        dead = cur.execute(q("open_dead_letters")).fetchone()
        breakers = cur.execute(q("breaker_state")).fetchall()
        runs = cur.execute(q("last_scheduled_runs")).fetchall()
        creds = cur.execute(q("credential_health")).fetchall()
        unlinked = cur.execute(q("unlinked_pending")).fetchone()
    return Snapshot(
        queue=queue,
        oldest_pending_at=oldest["oldest"] if oldest else None,
        open_dead_letters=dead["n"] if dead else 0,
        breakers=breakers,
        scheduled=runs,
        credentials=creds,
        pending_migrations=pending,
        unlinked=unlinked["count"] if unlinked else 0,
    )
