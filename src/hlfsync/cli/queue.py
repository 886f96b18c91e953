"""The sync queue at the command line: `status`, `worker`, `force-sync`, `dlq …`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from hlfsync.cli.app import (
    CommandError,
    JsonOpt,
    actor,
    app,
    dlq_app,
    err,
    load_settings,
    out,
    print_json,
    table,
    uuids,
)

if TYPE_CHECKING:
    from hlfsync.core.status import Snapshot
    from hlfsync.db.operations import ForceResult

# --- status --------------------------------------------------------------------------------


@app.command()
def status(as_json: JsonOpt = False) -> None:
    """Queue depth, sync lag, dead letters, breaker, last scheduled runs, credential health.

    Exit code 0 when healthy, 1 when degraded, so it can serve as a monitoring check.
    """
    from hlfsync import services
    from hlfsync.core import status as verdict
    from hlfsync.notify import operators  # say when operators would not be told

    settings = load_settings()
    snap, now = services.status_snapshot(settings), datetime.now(UTC)
    warnings = [w for w in (operators.channel_problem(settings),) if w]
    if as_json:
        print_json(verdict.as_json(snap, now, warnings))
    else:
        _print_status(snap, verdict.problems(snap, now), now, warnings)
    if verdict.problems(snap, now):
        raise typer.Exit(1)


def _print_status(snap: Snapshot, problems: list[str], now: datetime, warnings: list[str]) -> None:
    from hlfsync.core import status as verdict

    queue = table("status", "operations", title="sync queue")
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
    runs = table("job", "slot", "outcome", "finished", title="scheduled jobs")
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
    for warning in warnings:
        out.print(f"warning: {warning}")


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
    from hlfsync.worker.background import BackgroundFailed

    try:
        asyncio.run(services.worker_forever(settings))
    except BackgroundFailed as exc:
        raise CommandError(f"the worker stopped: its background loop failed: {exc}") from None


@app.command("force-sync")
def force_sync(
    mentor_ids: Annotated[list[str] | None, typer.Argument(help="Mentor ids.")] = None,
    all_mentors: Annotated[bool, typer.Option("--all", help="Every mentor.")] = False,
    chapter: Annotated[str | None, typer.Option(help="Every mentor of this chapter.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Queue an immediate sync (ahead of the routine queue) to each mentor's current state."""
    from hlfsync import services

    chosen = sum([bool(mentor_ids), all_mentors, chapter is not None])
    if chosen != 1:
        raise CommandError("give mentor ids, --chapter ID or --all (exactly one)", code=2)
    mentors = uuids(mentor_ids) if mentor_ids else None
    chapter_id = uuids([chapter])[0] if chapter else None
    settings = load_settings()
    result = services.force_sync(settings, mentors, chapter=chapter_id, actor=actor())
    _print_forced(result, as_json=as_json)
    if result.unknown:
        err.print(f"hlfsync: unknown mentor id(s): {', '.join(map(str, result.unknown))}")
        raise typer.Exit(1)


def _print_forced(result: ForceResult, *, as_json: bool) -> None:
    if as_json:
        queued = [{"mentor_id": m, "sync_queue_id": i, "operation": o} for m, i, o in result.queued]
        print_json(
            {"queued": queued, "unknown": result.unknown, "without_contact": result.without_contact}
        )
        return
    out.print(f"queued {len(result.queued)} sync(s)")
    for mentor in result.without_contact:
        out.print(f"not queued: mentor {mentor} has no Dynamics contact id")


@dlq_app.command("list")
def dlq_list(
    status: Annotated[str | None, typer.Option(help="open, requeued or resolved.")] = "open",
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Dead letters, newest first (open ones unless --status says otherwise)."""
    from hlfsync import services

    if status not in (None, "open", "requeued", "resolved", "all"):
        raise CommandError(f"--status must be open, requeued, resolved or all, not {status!r}", 2)
    settings = load_settings()
    rows = services.dead_letters(settings, status=None if status == "all" else status, limit=limit)
    if as_json:
        print_json(rows)
    else:
        _print_dead_letters(rows)


def _print_dead_letters(rows: list[dict[str, Any]]) -> None:
    shown = table("id", "mentor", "operation", "attempts", "status", "reason", title="dead letters")
    for row in rows:
        reason = row["failure_reason"][:80]
        shown.add_row(str(row["id"]), str(row["mentor_id"]), row["operation_type"],
                      str(row["attempt_count"]), row["status"], reason)  # fmt: skip
    out.print(shown)


@dlq_app.command("requeue")
def dlq_requeue(
    ids: Annotated[list[int] | None, typer.Argument(help="Dead-letter ids.")] = None,
    all_open: Annotated[bool, typer.Option("--all", help="Every open dead letter.")] = False,
) -> None:
    """Re-queue dead letters as fresh operations to each mentor's current state."""
    from hlfsync import services

    if bool(ids) == all_open:
        raise CommandError("give dead-letter ids or --all (exactly one)", code=2)
    settings = load_settings()
    done = services.requeue(settings, None if all_open else ids, actor=actor())
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

    if not note.strip():
        raise CommandError("--note must say what was done", code=2)
    settings = load_settings()
    if not services.resolve(settings, letter, note=note, actor=actor()):
        raise CommandError(f"dead letter {letter} is not open or does not exist")
    out.print(f"resolved dead letter {letter}")
