"""The `hlfsync` command line: each command loads settings, builds what it needs, calls one thing.

Bad input gets one line on stderr and a non-zero exit (2 for configuration and usage), never a
traceback. Data goes to stdout (`--json` where a command prints data); logs go to stderr.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from hlfsync import settings as settings_mod
from hlfsync.core.errors import ConfigError

app = typer.Typer(
    help="Keeps HLF's public peer-mentor listing in Dynamics in step with PostgreSQL.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Database: migrations and the embedded server.", no_args_is_help=True)
app.add_typer(db_app, name="db")

out = Console()
err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


class CommandError(Exception):
    """A command failed for a reason the user can act on; the message is the one line shown."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def load_settings(**overrides: object) -> settings_mod.Settings:
    from hlfsync import observability

    loaded = settings_mod.load(**overrides)
    observability.configure(loaded.log_level, loaded.log_format)
    return loaded


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, default=_default, indent=2, ensure_ascii=False) + "\n")


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
    table = Table("created", "count", title="seed")
    for key, value in result.items():
        table.add_row(key.replace("_", " "), str(value))
    out.print(table)


# --- status --------------------------------------------------------------------------------


@app.command()
def status(as_json: JsonOpt = False) -> None:
    """Queue depth, sync lag, dead letters, breaker, last scheduled runs, credential health.

    Exit code 0 when healthy, 1 when degraded, so it can serve as a monitoring check.
    """
    from hlfsync import services
    from hlfsync.core import status as verdict

    settings = load_settings()
    snap = services.status_snapshot(settings)
    now = datetime.now(UTC)
    problems = verdict.problems(snap, now)
    if as_json:
        print_json(
            {
                "healthy": not problems,
                "problems": problems,
                "queue": snap.queue,
                "sync_lag_s": round(verdict.lag_seconds(snap, now), 3),
                "open_dead_letters": snap.open_dead_letters,
                "breakers": snap.breakers,
                "scheduled_runs": snap.scheduled,
                "credentials": snap.credentials,
                "pending_migrations": snap.pending_migrations,
            }
        )
    else:
        _print_status(snap, problems, now)
    if problems:
        raise typer.Exit(1)


def _print_status(snap: Any, problems: list[str], now: datetime) -> None:
    from hlfsync.core import status as verdict

    queue = Table("status", "operations", title="sync queue")
    for state in ("pending", "in_progress", "succeeded", "dead_lettered", "superseded"):
        queue.add_row(state, str(snap.queue.get(state, 0)))
    out.print(queue)
    out.print(f"sync lag: {verdict.lag_seconds(snap, now):.1f} s")
    out.print(f"open dead letters: {snap.open_dead_letters}")
    for breaker in snap.breakers:
        since = breaker["opened_at"] or breaker["updated_at"]
        out.print(f"circuit {breaker['name']}: {breaker['state']} since {since:%Y-%m-%d %H:%M:%S}")
    runs = Table("job", "slot", "outcome", "finished", title="scheduled jobs")
    for run in snap.scheduled:
        finished = run["finished_at"].strftime("%Y-%m-%d %H:%M:%S") if run["finished_at"] else ""
        runs.add_row(run["job"], run["slot"].strftime("%Y-%m-%d %H:%M"), run["status"], finished)
    out.print(runs)
    for check in snap.credentials:
        state = "ok" if check["ok"] else f"FAILING: {check['detail']}"
        out.print(f"credentials {check['name']}: {state} (checked {check['checked_at']:%H:%M:%S})")
    if not snap.credentials:
        out.print("credentials: not checked yet")
    out.print("healthy" if not problems else "degraded: " + "; ".join(problems))


# --- worker --------------------------------------------------------------------------------


@app.command()
def worker(
    once: Annotated[bool, typer.Option("--once", help="Drain what is due, then exit.")] = False,
    concurrency: Annotated[
        int | None, typer.Option(min=1, max=500, help="Calls to Dynamics at once.")
    ] = None,
) -> None:
    """Process due sync operations and alerts (LISTEN/NOTIFY wake-up plus a poll interval)."""
    import asyncio

    from hlfsync import services

    settings = load_settings(worker_concurrency=concurrency)
    if once:
        handled, sent = asyncio.run(services.worker_once(settings))
        out.print(f"handled {handled} operation(s), sent {sent} alert delivery(ies)")
        return
    asyncio.run(services.worker_forever(settings))


# --- demo ----------------------------------------------------------------------------------


@app.command()
def demo(
    duration: Annotated[
        float | None, typer.Option(min=0, help="Stop after this many seconds.")
    ] = None,
    mentors: Annotated[int, typer.Option(min=0, help="Mentors to seed on first run.")] = 200,
) -> None:
    """Embedded PostgreSQL + sandbox + sample data + worker + API; prints where things are."""
    from hlfsync import demo as demo_mod

    settings = load_settings()
    demo_mod.run(settings, duration_s=duration, mentors=mentors, console=out)


def main() -> None:
    """Entry point: turns every anticipated failure into one line and an exit code."""
    try:
        app()
    except ValidationError as exc:
        err.print(f"hlfsync: {settings_mod.describe_error(exc)}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except ConfigError as exc:
        err.print(f"hlfsync: {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except CommandError as exc:
        err.print(f"hlfsync: {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.code)
    except KeyboardInterrupt:
        sys.exit(130)
