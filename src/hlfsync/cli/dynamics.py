"""Dynamics by hand: `health` (are the credentials and the contract good?) and `break-glass`."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from hlfsync.cli.app import CommandError, JsonOpt, app, err, load_settings, out, print_json


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
                        console=err.get(), disable=as_json)  # fmt: skip
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
            f" {result['skipped']} skipped, {result['left_for_retry']} left for retry,"
            f" {result['unlinked']} unlinked (no contact id: held for the workers)"
            f" ({result['queued_by_reconcile']} queued by reconciliation)"
        )
        for line in result["first_errors"]:
            out.print(f"  error: {line}")
    if result["failed"] or result["skipped"]:
        raise typer.Exit(1)


# --- remote systems ------------------------------------------------------------------------


@app.command()
def health(as_json: JsonOpt = False) -> None:
    """Health checks, each with its verdict: Dynamics (token, WhoAmI, entity set, listing field
    readable and writable), the push credentials and the operators' channel (exit 1 when one
    fails)."""
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
                soft_wrap=True,
            )
        for name in ("push", "operators"):
            if name in result:
                out.print(
                    f"{result[name]['status']:<12} {name:<14} {result[name]['detail']}",
                    highlight=False,
                    markup=False,
                    soft_wrap=True,
                )
        out.print(
            "healthy" if result["ok"] else f"unhealthy: {result['detail']}",
            markup=False,
            soft_wrap=True,
        )
    if not result["ok"] or result.get("push", {}).get("status") == "failing":
        raise typer.Exit(1)
