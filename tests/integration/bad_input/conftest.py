"""Bad-input sweep (issue 8): every external input fed its malformed forms, one file per input.

The inputs: sync payloads (rows of `sync_queue`), settings (`HLFSYNC_*`, `.env`), Dynamics
answers (PATCH, WhoAmI, the paged GET, the token authority), FCM answers (the send and its token
endpoint), API requests and access tokens. After each bad input the same invariant is checked:

- a clear error: one line; or a problem+json 4xx; or a dead letter saying `requires_investigation`
  and why (or, where the answer may pass, a retry whose recorded error says what came back);
- no crash: the worker, the dispatcher or the app does a good operation right afterwards;
- nothing lost: what was queued before the bad input is still there, or completed;
- no secret: the Dynamics client secret, the JWT secret, the FCM private key and any bearer token
  appear in no log event, no captured output, and no queue, dead-letter, audit or alert row.

Everything runs in-process against the session's PostgreSQL and sandbox (real HTTPS), with a
FakeClock: retry delays and pauses pass without waiting. Each file has one database for its
cases (see `db_url`); the helpers the fixtures build on are in `sweep.py`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
import structlog
from psycopg import sql

from hlfsync import services
from hlfsync.api import create_app
from hlfsync.db import connect
from hlfsync.settings import Settings
from hlfsync.testing import FakeClock, one
from hlfsync_sandbox.client import AdminClient
from hlfsync_sandbox.server import SandboxServer
from tests.integration.api import world as world_mod
from tests.integration.bad_input import sweep


@pytest.fixture(scope="module")
def db_url(pg_admin_url: str, template_url: str) -> Iterator[str]:
    """One database for the whole sweep, instead of a clone per case (a third of a second each).

    Each test owns its organisation and mentors and starts from a quiet queue (see `watch`).
    """
    name, template = f"sweep{os.getpid()}", urlsplit(template_url).path.lstrip("/")
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(drop)
        admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
    yield connect.with_database(pg_admin_url, name)
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(drop)


@pytest.fixture
def watch(
    conn: sweep.Conn, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> Iterator[sweep.Watch]:
    for statement in sweep.QUIET:
        conn.execute(statement.encode())
    marks = {
        table: one(conn, f"SELECT coalesce(max(id), 0) FROM {table}") for table in sweep.WITH_ID
    }
    # WARNING: what the stdlib loggers (msal, httpx, google-auth) print when nobody configures them.
    caplog.set_level(logging.WARNING)
    with structlog.testing.capture_logs() as events:
        yield sweep.Watch(
            events,
            caplog,
            capsys,
            marks,
            [sweep.CLIENT_SECRET, sweep.JWT_SECRET, *sweep.BEARER_PREFIXES],
        )


@pytest.fixture
def clock() -> FakeClock:
    """Ahead of the database clock, so rows the database stamps with now() are due at once.

    Ten seconds, not one: on a loaded machine a case's set-up (a team, its contacts in the
    sandbox) can take longer than a second, and rows queued after the lead ran out were not yet
    due in the first round, which made the retry cases fail now and then.
    """
    return FakeClock(datetime.now(UTC) + timedelta(seconds=10))


@pytest.fixture
def dyn(sandbox: SandboxServer, admin: AdminClient, watch: sweep.Watch) -> Iterator[SandboxServer]:
    """The sandbox accepting CLIENT_SECRET only; its FCM private key is watched too."""
    admin.rotate_credentials(client_secret=sweep.CLIENT_SECRET)
    key = json.loads(sandbox.fcm_credentials_path.read_text())["private_key"]
    watch.secrets.append(key.splitlines()[1])  # a line of the key's base64 body
    yield sandbox
    admin.reset()  # the session's sandbox goes back to its own secret


@pytest.fixture
async def engine(dyn: SandboxServer, db_url: str, clock: FakeClock) -> AsyncIterator[sweep.Engine]:
    """Workers wired by the production factories (msal, httpx, google-auth) to the sandbox."""
    built: list[services.WorkerServices] = []

    async def make(client: Any = None, **extra: Any) -> services.WorkerServices:
        conf = sweep.settings_for(dyn, db_url, **extra)
        worker = await services.build_worker(conf, clock=clock, client=client)
        built.append(worker)
        return worker

    yield make
    for worker in built:
        await worker.aclose()


@pytest.fixture
def rig(  # noqa: PLR0917 - fixtures are positional
    conn: sweep.Conn, admin: AdminClient, dyn: SandboxServer, engine: sweep.Engine,
    clock: FakeClock, watch: sweep.Watch,
) -> sweep.Rig:  # fmt: skip
    return sweep.Rig(conn, admin, dyn, engine, clock, watch)


@pytest.fixture(scope="module", autouse=True)
def world(db_url: str) -> world_mod.World:
    """The API tests' two organisations (tests/integration/api/world.py), built once, first:
    the database is new then, as the world expects."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        return world_mod.build(conn)


@pytest.fixture
async def api(db_url: str, world: world_mod.World) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process; an exception escaping it comes back as a 500, as a server sends it."""
    app = create_app(Settings(database_url=db_url, jwt_secret=sweep.JWT_SECRET, db_pool_size=2))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as http,
    ):
        yield http
