"""The health check: named checks against Dynamics (token, WhoAmI, the contract), recorded and
alerted.

Each check is a name and a coroutine; adding one (push credentials, say) is one entry in a list.
A failing credential check or contract check raises one administrator alert per failing spell
(not one per run) and holds the breaker; the first pass afterwards records recovery (one
"recovered" notice) and closes a breaker held for that reason, so held operations replay.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import structlog

from hlfsync.core.clock import Clock
from hlfsync.core.errors import AuthFailure, ContractFailure, Held, SyncFailure
from hlfsync.db import health
from hlfsync.db.breaker import DynamicsCircuitBreaker
from hlfsync.db.pool import Pool
from hlfsync.dynamics.port import DynamicsClient, HealthCheck

log = structlog.get_logger(__name__)

CHECK = health.CREDENTIALS

# Which hold each check proves: credentials or contract.
CREDENTIAL_CHECKS = ("token", "whoami")
CONTRACT_CHECKS = ("entity_set", "listing_field", "writable", "webhook")

Check = HealthCheck


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One named check's verdict: `pass`, `fail` (with its failure class) or `inconclusive`."""

    name: str
    verdict: str
    detail: str
    failure: str | None = None  # auth, contract, transient, throttled, permanent

    @property
    def ok(self) -> bool:
        return self.verdict == "pass"


def dynamics_checks(client: DynamicsClient) -> list[Check]:
    """The checks a client supports, in order: credentials first, then the contract."""

    async def whoami() -> str:
        identity = await client.who_am_i()
        return f"WhoAmI user {identity.user_id}"

    return [*client.credential_checks(), ("whoami", whoami), *client.contract_checks()]


async def run_checks(checks: Sequence[Check]) -> list[CheckResult]:
    """Run every check in order; a failure is recorded with its class, never raised."""
    results: list[CheckResult] = []
    for name, run in checks:
        try:
            detail = await run()
        except SyncFailure as failure:
            verdict = "fail" if isinstance(failure, Held) else "inconclusive"
            results.append(CheckResult(name, verdict, failure.summary(), failure.kind.value))
        else:
            verdict = "skipped" if detail.startswith("skipped") else "pass"
            results.append(CheckResult(name, verdict, detail))
    return results


async def record(
    pool: Pool,
    results: Sequence[CheckResult],
    breaker: DynamicsCircuitBreaker,
    clock: Clock,
    contract: str,
) -> dict[str, Any]:
    """Record what the checks proved: one alert per failing spell, recovery when they pass."""
    now = clock.now()
    auth = next((r for r in results if r.failure == "auth"), None)
    broken = next((r for r in results if r.failure == "contract"), None)
    alerted = False
    if auth is not None:
        alerted = await health.record_failure(
            pool, name=health.CREDENTIALS, contract=contract, detail=auth.detail, now=now
        )
        await breaker.on_auth_failure(now, auth.detail, "auth")
    elif broken is not None:
        alerted = await health.record_failure(
            pool, name=health.CONTRACT, contract=contract, detail=broken.detail, now=now
        )
        await breaker.on_auth_failure(now, broken.detail, "contract")
    recovered: list[str] = []
    by_name = {r.name: r for r in results}
    creds_ok = all(by_name[n].ok for n in CREDENTIAL_CHECKS if n in by_name)
    contract_ran = [by_name[n] for n in CONTRACT_CHECKS if n in by_name]
    contract_ok = creds_ok and all(r.verdict in ("pass", "skipped") for r in contract_ran)
    if creds_ok and auth is None:
        whoami = by_name.get("whoami")
        detail = whoami.detail if whoami is not None else "credentials work"
        if await health.record_ok(pool, name=health.CREDENTIALS, detail=detail, now=now):
            recovered.append(health.CREDENTIALS)
    if contract_ok and broken is None:
        detail = "; ".join(f"{r.name}: {r.detail}" for r in contract_ran) or "endpoint answered"
        if await health.record_ok(pool, name=health.CONTRACT, detail=detail, now=now):
            recovered.append(health.CONTRACT)
    view = await breaker.refresh()
    reason = breaker.hold_reason or "auth"
    if view.auth_failed and (contract_ok if reason == "contract" else creds_ok):
        await breaker.on_success(now)
    ok = all(r.verdict in ("pass", "skipped") for r in results)
    first_bad = next((r for r in results if r.verdict not in ("pass", "skipped")), None)
    summary: dict[str, Any] = {
        "ok": ok,
        "auth": auth is not None,
        "contract": broken is not None,
        "detail": first_bad.detail if first_bad else "all checks passed",
        "alerted": alerted,
        "recovered": bool(recovered),
        "checks": [asdict(r) for r in results],
    }
    whoami = by_name.get("whoami")
    if whoami is not None and whoami.ok:
        summary["user_id"] = whoami.detail.removeprefix("WhoAmI user ")
    if not ok and auth is None and broken is None:
        log.warning("health_check_inconclusive", detail=summary["detail"])
    return summary


async def check_credentials(
    pool: Pool, client: DynamicsClient, breaker: DynamicsCircuitBreaker, clock: Clock
) -> dict[str, Any]:
    """Run every check once; returns what `hlfsync health`, status and the scheduler record."""
    results = await run_checks(dynamics_checks(client))
    await _audit_write_probe(pool, client, results, clock)
    return await record(pool, results, breaker, clock, client.contract)


async def warm_up(checks: Sequence[Check]) -> None:
    """Run a client's credential checks (`credential_checks()`: for Dataverse the token, with
    msal's import and its discovery and token requests) before a person's change needs them.
    Without this, a worker's first live change after a start or deploy waited for all of it (up
    to a second under the night's load in bench.latency's two-workers row). Decides and records
    nothing: a failure is one log line, and the call that needs the credentials, or the health
    check, meets it again and acts."""
    try:
        results = await run_checks(checks)
    except Exception as exc:  # noqa: BLE001 - a warm-up that fails must not stop the worker
        names = ", ".join(name for name, _ in checks)
        log.warning("dynamics_warm_up_failed", check=names, detail=type(exc).__name__)
        return
    for result in results:
        if not result.ok:
            log.warning("dynamics_warm_up_failed", check=result.name, detail=result.detail)


async def _audit_write_probe(
    pool: Pool, client: DynamicsClient, results: Sequence[CheckResult], clock: Clock
) -> None:
    """Every call that writes to Dynamics leaves an audit row, the health check's too."""
    probe = client.take_write_probe()
    if probe is None:
        return
    verdict = next((r for r in results if r.name == "writable"), None)
    await health.audit_write_probe(
        pool,
        correlation_id=probe.correlation_id,
        contact_id=probe.contact_id,
        verdict=verdict.verdict if verdict else "unknown",
        detail=verdict.detail if verdict else "",
        now=clock.now(),
    )


__all__ = [
    "AuthFailure",
    "CheckResult",
    "ContractFailure",
    "check_credentials",
    "dynamics_checks",
    "record",
    "run_checks",
    "warm_up",
]
