"""What operators do by hand: force a sync, list, re-queue and resolve dead letters.

Synchronous (one-shot CLI commands); the same SQL functions back the API's actions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

from hlfsync.db.queries import q

FORCE_PRIORITY = 10


@dataclass(frozen=True)
class ForceResult:
    queued: list[tuple[UUID, int, str]]
    unknown: list[UUID]
    without_contact: list[UUID]


def force_sync(
    conn: psycopg.Connection[Any],
    mentors: Sequence[UUID] | None,
    *,
    actor: str,
    chapter: UUID | None = None,
) -> ForceResult:
    """Queue an immediate sync of the given mentors, a chapter's, or everyone's (None)."""
    ids: list[UUID] | None = list(mentors) if mentors is not None else None
    if chapter is not None:
        rows = conn.execute(q("chapter_mentors"), {"chapter": chapter}).fetchall()
        ids = [row[0] for row in rows]
    unknown: list[UUID] = []
    without: list[UUID] = []
    if ids is not None:
        known = dict(conn.execute(q("mentors_exist"), {"ids": ids}).fetchall())
        unknown = [m for m in ids if m not in known]
        without = [m for m in ids if known.get(m) is False]
    with conn.transaction():
        cur = conn.execute(
            q("force_sync"), {"ids": ids, "priority": FORCE_PRIORITY, "actor": actor}
        )
        queued = [(r[0], r[1], r[2]) for r in cur.fetchall()]
    return ForceResult(queued, unknown, without)


def list_dead_letters(
    conn: psycopg.Connection[Any], *, status: str | None, limit: int
) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(q("dlq_list"), {"status": status, "limit": limit}).fetchall()


def requeue(
    conn: psycopg.Connection[Any], ids: Sequence[int] | None, *, actor: str
) -> list[tuple[int, int]]:
    with conn.transaction():
        rows = conn.execute(
            q("dlq_requeue"), {"ids": list(ids) if ids is not None else None, "actor": actor}
        ).fetchall()
    return [(r[0], r[1]) for r in rows]


def resolve(conn: psycopg.Connection[Any], letter: int, *, note: str, actor: str) -> bool:
    with conn.transaction():
        row = conn.execute(
            q("dlq_resolve"), {"id": letter, "note": note, "actor": actor}
        ).fetchone()
    return bool(row and row[0])
