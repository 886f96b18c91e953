"""The nightly work by hand: `expiry-check` and `reconcile` (the scheduler runs the same)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import typer

from hlfsync.cli.app import CommandError, JsonOpt, app, load_settings, out, print_json, table


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
    shown = table("finding", "count", title="reconciliation" + (" (dry run)" if dry_run else ""))
    for key in ("contacts_read", "pages", "diverging", "queued", "skipped_in_flight",
                "unknown_listed_contacts", "contacts_missing_in_dynamics",
                "mentors_without_contact"):  # fmt: skip
        shown.add_row(key.replace("_", " "), str(stats[key]))
    out.print(shown)
    for item in stats["divergent_sample"]:
        state = "listed" if item["listed_in_dynamics"] else "not listed"
        out.print(f"diverges: mentor {item['mentor_id']} is {item['status']} but {state}")
    for contact in stats["unknown_sample"]:
        out.print(f"unknown: contact {contact} is listed but no mentor has it")
    out.print(f"took {stats['seconds']:.2f} s")
