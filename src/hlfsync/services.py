"""The composition root: builds what a command, the worker or the API needs from Settings.

Commands call one function here; nothing else wires adapters together.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from hlfsync.core.status import Snapshot
from hlfsync.db import connect, migrate
from hlfsync.db import seed as seed_mod
from hlfsync.db import status as status_mod
from hlfsync.settings import Settings


def database_url(settings: Settings, *, upgrade: bool = True) -> str:
    """The database URL, with the schema brought up to date unless told otherwise."""
    url = connect.database_url(settings)
    if upgrade:
        with connect.connect(url) as conn:
            migrate.upgrade(conn)
    return url


def today(settings: Settings) -> date:
    """What "today" is in HLF's time zone."""
    return datetime.now(settings.zone).date()


def seed(
    settings: Settings, *, mentors: int, orgs: int, chapters: int | None, seed: int
) -> dict[str, Any]:
    url = database_url(settings)
    with connect.connect(url) as conn:
        result = seed_mod.seed(
            conn, mentors=mentors, orgs=orgs, chapters=chapters, today=today(settings), seed=seed
        )
    return result.counts()


def status_snapshot(settings: Settings) -> Snapshot:
    url = connect.database_url(settings)
    with connect.connect(url) as conn:
        return status_mod.read(conn)
