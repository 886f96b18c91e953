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

    from hlfsync import services
    from hlfsync.core.errors import AuthFailure, SyncFailure

    overrides = _new_credentials(tenant_id, client_id)
    settings = load_settings().model_copy(update=overrides)
    progress = _Progress(shown=not as_json)
    try:
        result = asyncio.run(services.break_glass(settings, on_checked=progress.checked,
                             on_total=progress.total, on_progress=progress.advance))  # fmt: skip
    except AuthFailure as exc:
        raise CommandError(f"the new credentials were rejected: {exc.summary()}") from None
    except SyncFailure as exc:
        raise CommandError(f"Dynamics could not be reached: {exc.summary()}") from None
    finally:
        progress.stop()
    if as_json:
        print_json(result)
    else:
        _print_break_glass(result)
    if result["failed"] or result["skipped"]:
        raise typer.Exit(1)


def _new_credentials(tenant_id: str | None, client_id: str | None) -> dict[str, object]:
    """The settings break-glass overrides: the secret from a prompt or stdin, never argv."""
    from pydantic import SecretStr

    if sys.stdin.isatty():
        secret = typer.prompt("New Dynamics client secret", hide_input=True)
    else:
        secret = sys.stdin.readline().strip()
    if not secret:
        raise CommandError("no client secret given (prompt or first line of stdin)", code=2)
    overrides: dict[str, object] = {"dynamics_client_secret": SecretStr(secret)}
    if tenant_id:
        overrides["dynamics_tenant_id"] = tenant_id
    if client_id:
        overrides["dynamics_client_id"] = client_id
    return overrides


class _Progress:
    """A progress bar on stderr, started only once the credentials work: a refusal stays one
    line."""

    def __init__(self, *, shown: bool) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             console=err.get(), disable=not shown)  # fmt: skip
        self._task = self._bar.add_task("syncing", total=None)

    def checked(self, user: str) -> None:
        err.print(f"credentials ok (WhoAmI user {user})", highlight=False)
        self._bar.start()

    def total(self, total: int) -> None:
        self._bar.update(self._task, total=total)

    def advance(self, done: int) -> None:
        self._bar.advance(self._task, done)

    def stop(self) -> None:
        self._bar.stop()


def _print_break_glass(result: dict[str, Any]) -> None:
    out.print(
        f"break-glass: {result['done']} done, {result['failed']} failed,"
        f" {result['skipped']} skipped, {result['left_for_retry']} left for retry,"
        f" {result['unlinked']} unlinked (no contact id: held for the workers)"
        f" ({result['queued_by_reconcile']} queued by reconciliation)"
    )
    for line in result["first_errors"]:
        out.print(f"  error: {line}")


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
        _print_health(result)
    if not result["ok"] or result.get("push", {}).get("status") == "failing":
        raise typer.Exit(1)


def _print_health(result: dict[str, Any]) -> None:
    for check in result.get("checks", []):
        _line(check["verdict"], check["name"], check["detail"])
    for name in ("push", "operators"):
        if name in result:
            _line(result[name]["status"], name, result[name]["detail"])
    out.print(
        "healthy" if result["ok"] else f"unhealthy: {result['detail']}",
        markup=False,
        soft_wrap=True,
    )


def _line(verdict: str, name: str, detail: str) -> None:
    out.print(f"{verdict:<12} {name:<14} {detail}", highlight=False, markup=False, soft_wrap=True)
