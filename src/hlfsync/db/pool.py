"""The async connection pool a long-lived process (worker, API) shares; failures as one line."""

from __future__ import annotations

from psycopg import AsyncConnection
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from hlfsync.core.errors import ConfigError
from hlfsync.db.connect import CONNECT_TIMEOUT_S, redact

Pool = AsyncConnectionPool[AsyncConnection[TupleRow]]


async def open_pool(url: str, *, max_size: int, min_size: int = 1, name: str = "hlfsync") -> Pool:
    """Open a pool of autocommit connections, failing with one line if the database is away.

    Its connections carry `name` as their application_name (unless the URL names one), so
    pg_stat_activity says which part of a worker holds which connection.
    """
    options: dict[str, object] = {"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S}
    if "application_name" not in conninfo_to_dict(url):
        options["application_name"] = name
    pool: Pool = AsyncConnectionPool(
        url,
        min_size=min(min_size, max_size),
        max_size=max_size,
        kwargs=options,
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
