"""`hlfsync demo`: the whole system on embedded defaults, for a first look and for trying things.

Starts (or reuses) the embedded PostgreSQL, applies migrations, seeds sample data on first run,
and prints where everything is.
"""

from __future__ import annotations

from rich.console import Console

from hlfsync import services
from hlfsync.db import connect
from hlfsync.settings import Settings


def run(settings: Settings, *, duration_s: float | None, mentors: int, console: Console) -> None:
    url = services.database_url(settings)
    with connect.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM peer_mentors").fetchone()
        existing = int(str(row[0])) if row else 0
    if existing == 0:
        counts = services.seed(settings, mentors=mentors, orgs=2, chapters=None, seed=1)
        console.print(f"seeded {counts['mentors']} mentors in {counts['chapters']} chapters")
    else:
        console.print(f"found {existing} mentors from an earlier run")
    console.print(f"database: {connect.redact(url)}")
    console.print(f"data directory: {settings.data_dir}")
