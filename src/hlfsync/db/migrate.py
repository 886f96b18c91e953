"""Forward-only migrations: numbered plain-SQL files in `db/migrations/`, applied in order.

Each file runs in its own transaction and is recorded in `schema_migrations` with a checksum;
an applied file that changed is refused, never re-run. A session advisory lock serialises
concurrent upgrades (two workers starting together).
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from importlib import resources

import psycopg

from hlfsync.core.errors import ConfigError

# Any constant will do; it only has to be the same in every hlfsync process.
_LOCK_KEY = 0x484C4653  # "HLFS"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True)
class Applied:
    version: int
    name: str
    seconds: float


def available() -> list[Migration]:
    """The migrations shipped with this version, in order."""
    folder = resources.files("hlfsync.db") / "migrations"
    found = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    return found


def _ensure_table(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    conn.execute(
        """
        CREATE TABLE IF NOT EXISTS schema_migrations (
            version     int PRIMARY KEY,
            name        text NOT NULL,
            checksum    text NOT NULL,
            applied_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def applied_versions(conn: psycopg.Connection[tuple[object, ...]]) -> dict[int, str]:
    """version -> checksum of what has run; empty on a database never migrated."""
    exists = conn.execute("SELECT to_regclass('public.schema_migrations')").fetchone()
    if not exists or exists[0] is None:
        return {}
    rows = conn.execute("SELECT version, checksum FROM schema_migrations").fetchall()
    return {int(str(v)): str(c) for v, c in rows}


def pending(conn: psycopg.Connection[tuple[object, ...]]) -> list[Migration]:
    """Migrations not yet applied (what /readyz and `status` report)."""
    done = applied_versions(conn)
    return [m for m in available() if m.version not in done]


def upgrade(conn: psycopg.Connection[tuple[object, ...]]) -> list[Applied]:
    """Apply every pending migration; returns what ran (empty when already current)."""
    conn.autocommit = True
    conn.execute("SELECT pg_advisory_lock(%s)", [_LOCK_KEY])
    try:
        with conn.transaction():
            _ensure_table(conn)
        done = applied_versions(conn)
        ran: list[Applied] = []
        for migration in available():
            if migration.version in done:
                if done[migration.version] != migration.checksum:
                    raise ConfigError(
                        f"migration {migration.name} changed after it was applied; "
                        "migrations are forward-only: add a new file instead"
                    )
                continue
            started = time.perf_counter()
            try:
                with conn.transaction():
                    conn.execute(migration.sql.encode())
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum)"
                        " VALUES (%s, %s, %s)",
                        [migration.version, migration.name, migration.checksum],
                    )
            except psycopg.Error as exc:
                first = str(exc).strip().splitlines()[0]
                raise ConfigError(f"migration {migration.name} failed: {first}") from exc
            ran.append(Applied(migration.version, migration.name, time.perf_counter() - started))
        return ran
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", [_LOCK_KEY])
