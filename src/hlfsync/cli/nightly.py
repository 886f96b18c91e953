"""The nightly work by hand: `expiry-check` and `reconcile` (the scheduler runs the same)."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Annotated

import typer

from hlfsync.cli.app import (
    CommandError,
    JsonOpt,
    actor,
    app,
    load_settings,
    out,
    print_json,
    table,
)

if TYPE_CHECKING:
    from hlfsync.db.reconcile import ReconcileReport


@app.command("expiry-check")
def expiry_check(
    today: Annotated[
        str | None, typer.Option(help="The day to check (YYYY-MM-DD); default: today in Oslo.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """The nightly certification check: reminders and auto-pause. Idempotent: run it twice."""
    import asyncio

    from hlfsync import services

    day = _day(today)
    settings = load_settings()
    stats = asyncio.run(services.expiry_check(settings, day=day, actor=actor()))
    if as_json:
        print_json(stats)
        return
    out.print(
        f"expiry check for {stats['today']}: {stats['reminders_total']} reminder(s),"
        f" {stats['paused']} mentor(s) paused, {stats['deliveries']} push(es) queued"
    )


def _day(text: str | None) -> date | None:
    try:
        return None if text is None else date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"--today must be YYYY-MM-DD, not {text!r}", code=2) from None


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
    report = asyncio.run(services.reconcile(settings, dry_run=dry_run))
    if as_json:
        print_json(report.stats())
    else:
        _print_report(report)


def _print_report(report: ReconcileReport) -> None:
    shown = table(
        "finding", "count", title="reconciliation" + (" (dry run)" if report.dry_run else "")
    )
    for key, value in report.summary().items():
        if key not in ("seconds", "dry_run"):
            shown.add_row(key.replace("_", " "), str(value))
    out.print(shown)
    for item in report.divergent_sample:
        state = "listed" if item["listed_in_dynamics"] else "not listed"
        out.print(f"diverges: mentor {item['mentor_id']} is {item['status']} but {state}")
    for contact in report.unknown_sample:
        out.print(f"unknown: contact {contact} is listed but no mentor has it")
    out.print(f"took {report.seconds:.2f} s")
