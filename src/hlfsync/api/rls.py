"""The API's way into PostgreSQL: every query of a request runs as the caller, under RLS.

`as_caller` borrows a pool connection, opens a transaction, and switches it to the
`authenticated` role with the verified claims (both revert at the transaction's end, so the
connection goes back to the pool as it came). Database errors are translated here, at the edge.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import PoolTimeout

from hlfsync.api.auth import Caller
from hlfsync.api.problems import Problem
from hlfsync.db.pool import Pool
from hlfsync.db.queries import q

Conn = AsyncConnection[Any]


@asynccontextmanager
async def as_caller(pool: Pool, caller: Caller) -> AsyncIterator[Conn]:
    """A connection in a transaction that sees and does only what `caller` may."""
    try:
        async with pool.connection() as conn, conn.transaction():
            await conn.execute(q("api_become_caller"), {"claims": json.dumps(caller.claims)})
            yield conn
    except psycopg.errors.InsufficientPrivilege as exc:
        raise Problem(403, _first_line(exc), kind="forbidden") from exc
    except (psycopg.errors.CheckViolation, psycopg.DataError) as exc:
        # DataError: a value PostgreSQL cannot take (bad text for a type, a NUL in a string).
        raise Problem(422, _first_line(exc), kind="invalid-request") from exc
    except (psycopg.OperationalError, PoolTimeout) as exc:
        raise Problem(503, "the database is unavailable", kind="unavailable") from exc


@asynccontextmanager
async def as_service(pool: Pool) -> AsyncIterator[Conn]:
    """The pool's own role, for process endpoints without a caller (/readyz, /metrics): they
    read aggregates only. Any database error means "not ready": 503."""
    try:
        async with pool.connection() as conn:
            yield conn
    except (psycopg.Error, PoolTimeout) as exc:
        raise Problem(
            503, f"the database is not ready: {_first_line(exc)}", kind="not-ready"
        ) from exc


async def rows(conn: Conn, name: str, params: dict[str, Any] | None = None) -> list[DictRow]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(q(name), params or {})
        return await cur.fetchall()


async def row(conn: Conn, name: str, params: dict[str, Any] | None = None) -> DictRow | None:
    found = await rows(conn, name, params)
    return found[0] if found else None


async def one(conn: Conn, name: str, params: dict[str, Any] | None = None) -> DictRow:
    """The single row a query always returns (an aggregate, a function call)."""
    found = await row(conn, name, params)
    if found is None:
        raise RuntimeError(f"query {name} returned no row")
    return found


def _first_line(exc: Exception) -> str:
    diag = exc.diag.message_primary if isinstance(exc, psycopg.Error) else None
    text = str(exc).strip()
    return diag or (text.splitlines()[0] if text else type(exc).__name__)
