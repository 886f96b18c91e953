"""Mentors addressed by an alternate key: the key's value, and the contact id Dynamics answers.

The column feeding the key is a setting, so it is quoted with `psycopg.sql`, never formatted in.
"""

from __future__ import annotations

from uuid import UUID

import structlog
from psycopg import sql

from hlfsync.core.errors import ConfigError
from hlfsync.db.pool import Pool
from hlfsync.db.queries import q
from hlfsync.settings import PREFIX

log = structlog.get_logger(__name__)


async def check_column(pool: Pool, column: str) -> None:
    """ConfigError naming the setting when `column` is not a column of `peer_mentors`."""
    async with pool.connection() as conn:
        row = await (await conn.execute(q("key_column_exists"), {"column": column})).fetchone()
    if not (row and row[0]):
        raise ConfigError(
            f"invalid setting {PREFIX}DYNAMICS_ALTERNATE_KEY_COLUMN: peer_mentors has no column "
            f"{column!r}"
        )


async def key_value(pool: Pool, column: str, mentor_id: UUID) -> str | None:
    """The mentor's value for the alternate key, as text; None when it has none."""
    query = sql.SQL("SELECT {}::text FROM public.peer_mentors WHERE id = %(mentor)s").format(
        sql.Identifier(column)
    )
    async with pool.connection() as conn:
        row = await (await conn.execute(query, {"mentor": mentor_id})).fetchone()
    value = row[0] if row else None
    return value if isinstance(value, str) and value.strip() else None


async def store_contact_id(pool: Pool, mentor_id: UUID, contact_id: UUID) -> bool:
    """Remember the contact id Dynamics answered; False when it was known or taken already."""
    async with pool.connection() as conn:
        row = await (
            await conn.execute(q("mentor_link"), {"mentor": mentor_id, "contact": contact_id})
        ).fetchone()
    if row is None:
        log.warning("mentor_link_skipped", mentor_id=str(mentor_id), contact_id=str(contact_id))
    return row is not None


async def unlinked_pending(pool: Pool) -> int:
    """Operations held as `unlinked` right now."""
    async with pool.connection() as conn:
        row = await (await conn.execute(q("unlinked_pending"))).fetchone()
    return int(row[0]) if row else 0
