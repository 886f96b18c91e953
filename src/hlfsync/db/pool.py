"""The async connection pool a long-lived process (worker, API) shares; failures as one line."""

from __future__ import annotations

from psycopg import AsyncConnection
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from hlfsync.core.errors import ConfigError
from hlfsync.db.connect import CONNECT_TIMEOUT_S, redact

Pool = AsyncConnectionPool[AsyncConnection[TupleRow]]


async def open_pool(url: str, *, max_size: int, min_size: int = 1, name: str = "hlfsync") -> Pool:
    """Open a pool of autocommit connections, failing with one line if the database is away."""
    pool: Pool = AsyncConnectionPool(
        url,
        min_size=min(min_size, max_size),
        max_size=max_size,
        kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S},
        open=False,
        name=name,
        # A restarted PostgreSQL leaves broken connections in the pool; check before use.
        check=AsyncConnectionPool.check_connection,
        reconnect_timeout=300,
    )
    try:
        await pool.open(wait=True, timeout=CONNECT_TIMEOUT_S * 2)
    except PoolTimeout as exc:
        await pool.close()
        raise ConfigError(f"cannot reach the database at {redact(url)}") from exc
    return pool
