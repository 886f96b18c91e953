"""Test harness: one PostgreSQL per session, a migrated template, a fresh database per test.

The server is the embedded one unless HLFSYNC_TEST_DATABASE_URL names another (a superuser URL,
since tests create databases). Cloning the template costs milliseconds, so no test depends on
another's data.

`uv run pytest` runs the tests in several pytest-xdist worker processes (pyproject's addopts).
Each worker is a session of its own: its own embedded server in its own data directory, its own
sandbox, and database names carrying its pid, so workers share no server, port or file.
"""

from __future__ import annotations

import atexit
import gc
import itertools
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import psutil
import psycopg
import pytest
from psycopg import sql

from hlfsync.db import connect, embedded, migrate
from hlfsync_sandbox.client import AdminClient
from hlfsync_sandbox.server import SandboxServer
from tests import scratch
from tests.system import (  # noqa: F401 - hooks: a missing system package skips, or fails in CI
    pytest_configure,
    pytest_make_collect_report,
    pytest_runtest_makereport,
)

pytest_plugins = ["pytester"]  # tests/unit/test_system_requirements.py runs pytest on pytest

TEMPLATE = f"hlfsync_template_{os.getpid()}"
SOURCE = f"hlfsync_source_{os.getpid()}"
_counter = itertools.count()
MIGRATION_LOCK = 0x686C6673  # "hlfs"


def pytest_collection_finish(session: pytest.Session) -> None:
    # Everything imported so far (pytest, the app, Hypothesis, Schemathesis: most of the heap)
    # lives to the end of the run; frozen, it is no longer walked by every full collection,
    # which cut the time spent collecting garbage to a third (reconcile collects once a page).
    del session
    gc.freeze()


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
    data_dir = scratch.cluster_dir("hlfsync-test-pg-")
    # Registered before the wheel's own handler, so it runs after it: the wheel deletes the
    # cluster, this the directory around it (its start lock).
    atexit.register(shutil.rmtree, data_dir, ignore_errors=True)
    url = connect.with_database(embedded.start(data_dir, cleanup="delete"), "postgres")
    # A throwaway server: durability buys nothing here, and without fsync creating and dropping
    # a test's database costs a tenth of what it does with it (2.6 s to 0.2 s on a busy machine).
    with psycopg.connect(url, autocommit=True) as admin:
        for setting in ("fsync", "full_page_writes", "synchronous_commit"):
            admin.execute(sql.SQL("ALTER SYSTEM SET {} = off").format(sql.Identifier(setting)))
        admin.execute("SELECT pg_reload_conf()")
    postmaster = psutil.Process(
        int((data_dir / "pgdata" / "postmaster.pid").read_text().split()[0])
    )
    yield url
    # Stopped here, not only by the wheel's atexit handler: an xdist worker can end before
    # that runs, and its server would outlive the run. The handler still deletes the directory.
    embedded.stop(data_dir)
    # pg_ctl returns once the pid file is gone, a moment before the server has exited; the
    # wheel's handler, finding it still there, would stop it again and die of NoSuchProcess.
    psutil.wait_procs([postmaster], timeout=10)


@pytest.fixture(scope="session")
def template_url(pg_admin_url: str) -> str:
    """A database migrated once per session, the template every test database is cloned from."""
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(TEMPLATE)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE)))
    url = connect.with_database(pg_admin_url, TEMPLATE)
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        # On a server shared by several workers (HLFSYNC_TEST_DATABASE_URL), one migration at a
        # time: the roles 0001 creates are the cluster's, and two workers creating them at once
        # would collide. The lock lives in the admin URL's database, the same for every worker.
        admin.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK])
        with psycopg.connect(url) as conn:
            migrate.upgrade(conn)
    return url


class _Clones:
    """Test databases cloned from the template one test ahead and dropped behind, on a thread.

    A clone and a drop each cost a checkpoint (a fifth of a second on a quiet machine, seconds
    on a busy one); made while the previous test runs, the next test finds its database ready.
    Every test still gets a database no other test has touched.
    """

    def __init__(self, admin_url: str) -> None:
        self._admin_url = admin_url
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-databases")
        self._admin: psycopg.Connection[tuple[object, ...]] | None = None
        self._drops: list[Future[None]] = []
        self._next = self._thread.submit(self._create)

    def take(self) -> str:
        """A fresh clone's name; the next one is started at once."""
        name = self._next.result()
        self._next = self._thread.submit(self._create)
        return name

    def give_back(self, name: str) -> None:
        self._drops.append(self._thread.submit(self._drop, name))

    def close(self) -> None:
        """Drop what is left; a failed drop fails the session's teardown."""
        self.give_back(self._next.result())
        self._thread.submit(self._close_admin)
        self._thread.shutdown(wait=True)
        for drop in self._drops:
            drop.result()

    def _execute(self, statement: sql.Composed) -> None:
        # One connection for the thread's lifetime: it is only ever used from that thread.
        if self._admin is None:
            self._admin = psycopg.connect(self._admin_url, autocommit=True)
        self._admin.execute(statement)

    def _create(self) -> str:
        name = f"t{os.getpid()}_{next(_counter)}"
        # FILE_COPY: a checkpoint and a file copy, cheaper than WAL-logging every page of a
        # small template.
        self._execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY = FILE_COPY").format(
                sql.Identifier(name), sql.Identifier(SOURCE)
            )
        )
        return name

    def _drop(self, name: str) -> None:
        self._execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )

    def _close_admin(self) -> None:
        if self._admin is not None:
            self._admin.close()


@pytest.fixture(scope="session")
def _clones(pg_admin_url: str, template_url: str) -> Iterator[_Clones]:
    # The clones' source is a copy of the template that nothing else connects to: a clone fails
    # while anyone is connected to its source, and tests read the template while the next
    # test's database is being made.
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(SOURCE)))
        admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY = FILE_COPY").format(
                sql.Identifier(SOURCE), sql.Identifier(TEMPLATE)
            )
        )
    clones = _Clones(pg_admin_url)
    yield clones
    clones.close()
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(SOURCE)))


@pytest.fixture
def db_url(pg_admin_url: str, _clones: _Clones) -> Iterator[str]:
    """A fresh, migrated database for this test alone."""
    name = _clones.take()
    yield connect.with_database(pg_admin_url, name)
    _clones.give_back(name)


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
