"""Test harness: one PostgreSQL per session, a migrated template, a fresh database per test.

The server is the embedded one unless HLFSYNC_TEST_DATABASE_URL names another (a superuser URL,
since tests create databases). Cloning the template costs milliseconds, so no test depends on
another's data.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from hlfsync.db import connect, embedded, migrate
from hlfsync_sandbox.client import AdminClient
from hlfsync_sandbox.server import SandboxServer
from tests.system import (  # noqa: F401 - hooks: a missing system package skips, or fails in CI
    pytest_configure,
    pytest_make_collect_report,
    pytest_runtest_makereport,
)

pytest_plugins = ["pytester"]  # tests/unit/test_system_requirements.py runs pytest on pytest

TEMPLATE = f"hlfsync_template_{os.getpid()}"
_counter = itertools.count()


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Drop stray HLFSYNC_* settings and work in an empty directory, so no .env leaks in."""
    for key in list(os.environ):
        if key.startswith("HLFSYNC_") and key != "HLFSYNC_TEST_DATABASE_URL":
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """A superuser URL to the session's PostgreSQL server."""
    given = os.environ.get("HLFSYNC_TEST_DATABASE_URL")
    if given:
        yield given
        return
    # Not under pytest's basetemp: pytest prunes old basetemps, which would delete the data
    # directory of a server another concurrent session still uses.
    data_dir = Path(tempfile.mkdtemp(prefix="hlfsync-test-pg-"))
    url = connect.with_database(embedded.start(data_dir, cleanup="delete"), "postgres")
    # A throwaway server: durability buys nothing here, and without fsync creating and dropping
    # a test's database costs a tenth of what it does with it (2.6 s to 0.2 s on a busy machine).
    with psycopg.connect(url, autocommit=True) as admin:
        for setting in ("fsync", "full_page_writes", "synchronous_commit"):
            admin.execute(sql.SQL("ALTER SYSTEM SET {} = off").format(sql.Identifier(setting)))
        admin.execute("SELECT pg_reload_conf()")
    yield url


@pytest.fixture(scope="session")
def template_url(pg_admin_url: str) -> str:
    """A database migrated once per session, the template every test database is cloned from."""
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(TEMPLATE)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE)))
    url = connect.with_database(pg_admin_url, TEMPLATE)
    with psycopg.connect(url) as conn:
        migrate.upgrade(conn)
    return url


@pytest.fixture
def db_url(pg_admin_url: str, template_url: str) -> Iterator[str]:
    """A fresh, migrated database for this test alone."""
    name = f"t{os.getpid()}_{next(_counter)}"
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(
            # FILE_COPY: a checkpoint and a file copy, cheaper than WAL-logging every page of
            # a small template.
            sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY = FILE_COPY").format(
                sql.Identifier(name), sql.Identifier(TEMPLATE)
            )
        )
    yield connect.with_database(pg_admin_url, name)
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """An autocommit connection to the test's database."""
    with psycopg.connect(db_url, autocommit=True) as connection:
        yield connection


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxServer]:
    """One sandbox (Dataverse, token endpoints, FCM, over HTTPS) for the whole session."""
    with SandboxServer() as server:
        yield server


@pytest.fixture
def admin(sandbox: SandboxServer) -> Iterator[AdminClient]:
    """The sandbox's control client, on a sandbox reset to nothing: no contacts, logs, faults,
    messages; the initial credentials."""
    client = sandbox.admin()
    client.reset()
    yield client
    client.clear_faults()
