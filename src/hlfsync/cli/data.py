"""`hlfsync db …` and `seed`: the database, its migrations, sample data."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from hlfsync.cli.app import JsonOpt, app, db_app, load_settings, out, print_json, table

# --- db ------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations (idempotent)."""
    from hlfsync.db import connect, migrate

    settings = load_settings()
    url = connect.database_url(settings)
    with connect.connect(url) as conn:
        ran = migrate.upgrade(conn)
    if not ran:
        out.print("database is up to date")
    for item in ran:
        out.print(f"applied {item.name} in {item.seconds * 1000:.0f} ms")


@db_app.command("url")
def db_url() -> None:
    """Print the effective database URL (starts the embedded server if needed)."""
    from hlfsync.db import connect

    settings = load_settings()
    url = connect.database_url(settings)
    with connect.connect(url):
        pass  # prove it answers before printing it
    sys.stdout.write(connect.redact(url) + "\n")


@db_app.command("psql", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def db_psql(ctx: typer.Context) -> None:
    """psql on the effective database (the wheel's own psql); extra arguments go to psql,
    e.g. `hlfsync db psql -c "SELECT count(*) FROM sync_queue"`."""
    from hlfsync.db import connect, embedded

    settings = load_settings(demo_sandbox=False)
    url = connect.database_url(settings)
    with connect.connect(url):
        pass  # a clear line if it does not answer, before handing over to psql
    program = str(embedded.client_program("psql"))
    sys.stdout.flush()
    os.execv(program, [program, "--no-psqlrc", url, *ctx.args])  # noqa: S606 - psql by path


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded server (it otherwise keeps running for the next command)."""
    from hlfsync.db import embedded

    settings = load_settings()
    stopped = embedded.stop(settings.data_dir)
    out.print("stopped the embedded server" if stopped else "the embedded server was not running")


# --- seed ----------------------------------------------------------------------------------


@app.command()
def seed(
    mentors: Annotated[int, typer.Option(min=0, help="Peer mentors to create.")] = 100,
    orgs: Annotated[int, typer.Option(min=1, help="Organisations.")] = 3,
    chapters: Annotated[int | None, typer.Option(min=1, help="Chapters in all.")] = None,
    random_seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 1,
    as_json: JsonOpt = False,
) -> None:
    """Create sample organisations, chapters, coordinators, mentors and certifications."""
    from hlfsync import services

    settings = load_settings()
    result = services.seed(
        settings, mentors=mentors, orgs=orgs, chapters=chapters, seed=random_seed
    )
    if as_json:
        print_json(result)
        return
    shown = table("created", "count", title="seed")
    for key, value in result.items():
        shown.add_row(key.replace("_", " "), str(value))
    out.print(shown)
