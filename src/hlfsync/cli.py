"""The `hlfsync` command line: each command loads settings, builds what it needs, calls one thing.

Bad input gets one line on stderr and a non-zero exit (2 for configuration and usage), never a
traceback. Data goes to stdout (`--json` where a command prints data); logs go to stderr.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

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
dlq_app = typer.Typer(help="The dead-letter queue: list, re-queue, resolve.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")

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
                "unlinked": snap.unlinked,
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
        held = f" (held: {breaker['hold_reason']})" if breaker.get("hold_reason") else ""
        out.print(
            f"circuit {breaker['name']}: {breaker['state']}{held} since {since:%Y-%m-%d %H:%M:%S}"
        )
    if snap.unlinked:
        out.print(f"unlinked (no contact id, no alternate key): {snap.unlinked} held")
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


# --- manual operations ---------------------------------------------------------------------


def _actor() -> str:
    import getpass

    return f"cli:{getpass.getuser()}"


def _uuids(values: list[str]) -> list[UUID]:
    parsed = []
    for value in values:
        try:
            parsed.append(UUID(value))
        except ValueError:
            raise CommandError(f"not a mentor id (UUID): {value!r}", code=2) from None
    return parsed


@app.command("force-sync")
def force_sync(
    mentor_ids: Annotated[list[str] | None, typer.Argument(help="Mentor ids.")] = None,
    all_mentors: Annotated[bool, typer.Option("--all", help="Every mentor.")] = False,
    chapter: Annotated[str | None, typer.Option(help="Every mentor of this chapter.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Queue an immediate sync (ahead of the routine queue) to each mentor's current state."""
    from hlfsync import services
    from hlfsync.db import connect, operations

    chosen = sum([bool(mentor_ids), all_mentors, chapter is not None])
    if chosen != 1:
        raise CommandError("give mentor ids, --chapter ID or --all (exactly one)", code=2)
    mentors = _uuids(mentor_ids) if mentor_ids else None
    chapter_id = _uuids([chapter])[0] if chapter else None
    settings = load_settings()
    with connect.connect(services.database_url(settings)) as conn:
        result = operations.force_sync(conn, mentors, actor=_actor(), chapter=chapter_id)
    if as_json:
        print_json(
            {
                "queued": [
                    {"mentor_id": m, "sync_queue_id": i, "operation": o}
                    for m, i, o in result.queued
                ],
                "unknown": result.unknown,
                "without_contact": result.without_contact,
            }
        )
    else:
        out.print(f"queued {len(result.queued)} sync(s)")
        for mentor in result.without_contact:
            out.print(f"not queued: mentor {mentor} has no Dynamics contact id")
    if result.unknown:
        err.print(f"hlfsync: unknown mentor id(s): {', '.join(map(str, result.unknown))}")
        raise typer.Exit(1)


@dlq_app.command("list")
def dlq_list(
    status: Annotated[str | None, typer.Option(help="open, requeued or resolved.")] = "open",
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Dead letters, newest first (open ones unless --status says otherwise)."""
    from hlfsync import services
    from hlfsync.db import connect, operations

    if status not in (None, "open", "requeued", "resolved", "all"):
        raise CommandError(f"--status must be open, requeued, resolved or all, not {status!r}", 2)
    settings = load_settings()
    with connect.connect(services.database_url(settings)) as conn:
        rows = operations.list_dead_letters(
            conn, status=None if status == "all" else status, limit=limit
        )
    if as_json:
        print_json(rows)
        return
    table = Table("id", "mentor", "operation", "attempts", "status", "reason", title="dead letters")
    for row in rows:
        table.add_row(
            str(row["id"]),
            str(row["mentor_id"]),
            row["operation_type"],
            str(row["attempt_count"]),
            row["status"],
            row["failure_reason"][:80],
        )
    out.print(table)


@dlq_app.command("requeue")
def dlq_requeue(
    ids: Annotated[list[int] | None, typer.Argument(help="Dead-letter ids.")] = None,
    all_open: Annotated[bool, typer.Option("--all", help="Every open dead letter.")] = False,
) -> None:
    """Re-queue dead letters as fresh operations to each mentor's current state."""
    from hlfsync import services
    from hlfsync.db import connect, operations

    if bool(ids) == all_open:
        raise CommandError("give dead-letter ids or --all (exactly one)", code=2)
    settings = load_settings()
    with connect.connect(services.database_url(settings)) as conn:
        done = operations.requeue(conn, None if all_open else ids, actor=_actor())
    out.print(f"re-queued {len(done)} dead letter(s)")
    missing = sorted(set(ids or []) - {letter for letter, _ in done})
    if missing:
        err.print(f"hlfsync: not open or not found: {', '.join(map(str, missing))}")
        raise typer.Exit(1)


@dlq_app.command("resolve")
def dlq_resolve(
    letter: Annotated[int, typer.Argument(help="Dead-letter id.")],
    note: Annotated[str, typer.Option(help="What was done about it.")],
) -> None:
    """Close a dead letter by hand, with a note (it is kept, never deleted)."""
    from hlfsync import services
    from hlfsync.db import connect, operations

    if not note.strip():
        raise CommandError("--note must say what was done", code=2)
    settings = load_settings()
    with connect.connect(services.database_url(settings)) as conn:
        if not operations.resolve(conn, letter, note=note, actor=_actor()):
            raise CommandError(f"dead letter {letter} is not open or does not exist")
    out.print(f"resolved dead letter {letter}")


@app.command("expiry-check")
def expiry_check(
    today: Annotated[
        str | None, typer.Option(help="The day to check (YYYY-MM-DD); default: today in Oslo.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """The nightly certification check: reminders and auto-pause. Idempotent: run it twice."""
    from hlfsync import services

    day = None
    if today is not None:
        try:
            day = date.fromisoformat(today)
        except ValueError:
            raise CommandError(f"--today must be YYYY-MM-DD, not {today!r}", code=2) from None
    settings = load_settings()
    stats = services.expiry_check(settings, day=day)
    if as_json:
        print_json(stats)
        return
    out.print(
        f"expiry check for {stats['today']}: {stats['reminders_total']} reminder(s),"
        f" {stats['paused']} mentor(s) paused, {stats['deliveries']} push(es) queued"
    )


@app.command()
def reconcile(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the divergence; change nothing.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Compare Dynamics' listing with the app page by page; re-queue every divergent mentor."""
    import asyncio

    from hlfsync import services

    settings = load_settings()
    stats = asyncio.run(services.reconcile(settings, dry_run=dry_run))
    if as_json:
        print_json(stats)
        return
    table = Table("finding", "count", title="reconciliation" + (" (dry run)" if dry_run else ""))
    for key in ("contacts_read", "pages", "diverging", "queued", "skipped_in_flight",
                "unknown_listed_contacts", "contacts_missing_in_dynamics",
                "mentors_without_contact"):  # fmt: skip
        table.add_row(key.replace("_", " "), str(stats[key]))
    out.print(table)
    for item in stats["divergent_sample"]:
        state = "listed" if item["listed_in_dynamics"] else "not listed"
        out.print(f"diverges: mentor {item['mentor_id']} is {item['status']} but {state}")
    for contact in stats["unknown_sample"]:
        out.print(f"unknown: contact {contact} is listed but no mentor has it")
    out.print(f"took {stats['seconds']:.2f} s")


@app.command("break-glass")
def break_glass(
    tenant_id: Annotated[str | None, typer.Option(help="Tenant id, if it changed too.")] = None,
    client_id: Annotated[str | None, typer.Option(help="Client id, if it changed too.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Sync every divergent mentor now with a client secret given at a prompt or on stdin.

    Bypasses the circuit breaker but still classifies errors and audits as `break-glass`. The
    secret is never taken as an argument (it would show in the process list) and never stored:
    put it in the configuration afterwards (see docs/operations.md).
    """
    import asyncio

    from pydantic import SecretStr
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from hlfsync import services
    from hlfsync.core.errors import AuthFailure, SyncFailure

    if sys.stdin.isatty():
        secret = typer.prompt("New Dynamics client secret", hide_input=True)
    else:
        secret = sys.stdin.readline().strip()
    if not secret:
        raise CommandError("no client secret given (prompt or first line of stdin)", code=2)
    overrides: dict[str, Any] = {"dynamics_client_secret": SecretStr(secret)}
    if tenant_id:
        overrides["dynamics_tenant_id"] = tenant_id
    if client_id:
        overrides["dynamics_client_id"] = client_id
    settings = load_settings().model_copy(update=overrides)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        console=err, disable=as_json)  # fmt: skip
    task = progress.add_task("syncing", total=None)

    def checked(user: str) -> None:
        err.print(f"credentials ok (WhoAmI user {user})", highlight=False)
        progress.start()  # only once the credentials work: a refusal stays one line

    try:
        result = asyncio.run(
            services.break_glass(
                settings,
                on_checked=checked,
                on_total=lambda total: progress.update(task, total=total),
                on_progress=lambda n: progress.advance(task, n),
            )
        )
    except AuthFailure as exc:
        raise CommandError(f"the new credentials were rejected: {exc.summary()}") from None
    except SyncFailure as exc:
        raise CommandError(f"Dynamics could not be reached: {exc.summary()}") from None
    finally:
        progress.stop()
    if as_json:
        print_json(result)
    else:
        out.print(
            f"break-glass: {result['done']} done, {result['failed']} failed,"
            f" {result['skipped']} skipped, {result['left_for_retry']} left for retry"
            f" ({result['queued_by_reconcile']} queued by reconciliation)"
        )
        for line in result["first_errors"]:
            out.print(f"  error: {line}")
    if result["failed"] or result["skipped"]:
        raise typer.Exit(1)


# --- remote systems ------------------------------------------------------------------------


@app.command()
def health(as_json: JsonOpt = False) -> None:
    """Health check against Dynamics, each check with its verdict: token, WhoAmI, entity set,
    listing field readable and writable (exit 1 when one fails)."""
    import asyncio

    from hlfsync import services

    settings = load_settings()
    result = asyncio.run(services.health_check(settings))
    if as_json:
        print_json(result)
    else:
        for check in result.get("checks", []):
            out.print(
                f"{check['verdict']:<12} {check['name']:<14} {check['detail']}",
                highlight=False,
                markup=False,
            )
        out.print("healthy" if result["ok"] else f"unhealthy: {result['detail']}", markup=False)
    if not result["ok"]:
        raise typer.Exit(1)


@app.command()
def sandbox(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one).")] = 8443,
    env_file: Annotated[
        Path | None, typer.Option(help="Write the HLFSYNC_* settings that point at it here.")
    ] = None,
) -> None:
    """Run the local Dataverse + token + FCM emulator (HTTPS, with fault injection)."""
    from hlfsync.sandbox import server

    settings = load_settings()
    data_dir = settings.data_dir / "sandbox"
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        server.serve(host, port, env_file, data_dir)
    except OSError as exc:
        raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc


# --- API ---------------------------------------------------------------------------------


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Address (default HLFSYNC_API_HOST).")] = None,
    port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="Port (default HLFSYNC_API_PORT).")
    ] = None,
) -> None:
    """The HTTP API (/api/v1, /openapi.json, /metrics) and the dashboard (/dashboard)."""
    import asyncio

    from hlfsync import services

    settings = load_settings()
    asyncio.run(services.api_forever(settings, host=host, port=port))


@app.command()
def run() -> None:
    """Production all-in-one: worker, scheduler and API in one process."""
    import asyncio

    from hlfsync import services

    settings = load_settings()
    asyncio.run(services.run_forever(settings))


@app.command()
def token(
    user: Annotated[str, typer.Option("--user", help="The user id (the JWT sub).")],
    ttl: Annotated[float, typer.Option(min=1, help="Lifetime in seconds.")] = 3600,
) -> None:
    """Mint an API token for a user (needs HLFSYNC_JWT_SECRET; for development and tests)."""
    from hlfsync import services

    _uuids([user])
    settings = load_settings()
    sys.stdout.write(services.mint(settings, user=user, ttl_s=ttl) + "\n")


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
    """Entry point: turns every anticipated failure into one line and an exit code.

    The line is printed as it is (`markup=False`): it may quote a bad value, and a value such as
    `[/]` read as Rich markup would raise instead of being shown.
    """
    try:
        app()
    except ValidationError as exc:
        err.print(
            f"hlfsync: {settings_mod.describe_error(exc)}",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
        sys.exit(2)
    except ConfigError as exc:
        err.print(f"hlfsync: {exc}", highlight=False, soft_wrap=True, markup=False)
        sys.exit(2)
    except CommandError as exc:
        err.print(f"hlfsync: {exc}", highlight=False, soft_wrap=True, markup=False)
        sys.exit(exc.code)
    except KeyboardInterrupt:
        sys.exit(130)
