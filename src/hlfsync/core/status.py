"""What "healthy" means for `hlfsync status`, the dashboard and monitoring: a pure verdict.

Degraded means someone should look: the breaker is not closed, credentials fail, Dynamics is
throttling us, dead letters wait for a person, the oldest operation has waited too long, or a
scheduled job's last run failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

MAX_HEALTHY_LAG = timedelta(minutes=5)


@dataclass(frozen=True)
class Snapshot:
    """Everything `status` shows, read in one go."""

    queue: dict[str, int]
    oldest_pending_at: datetime | None
    open_dead_letters: int
    breakers: list[dict[str, Any]]
    scheduled: list[dict[str, Any]]
    credentials: list[dict[str, Any]]
    pending_migrations: list[str] = field(default_factory=list)
    unlinked: int = 0  # operations held: their mentor has no contact id and no alternate key


def lag_seconds(snapshot: Snapshot, now: datetime) -> float:
    if snapshot.oldest_pending_at is None:
        return 0.0
    return max(0.0, (now - snapshot.oldest_pending_at).total_seconds())


def problems(snapshot: Snapshot, now: datetime) -> list[str]:
    """Each reason the system is degraded, as a short sentence; empty when healthy."""
    found: list[str] = []
    if snapshot.pending_migrations:
        found.append(f"{len(snapshot.pending_migrations)} migration(s) not applied")
    for breaker in snapshot.breakers:
        if breaker["state"] != "closed":
            found.append(f"circuit {breaker['name']} is {breaker['state']}")
        paused = breaker.get("paused_until")
        if paused is not None and paused > now:
            found.append(f"calls to {breaker['name']} paused by throttling until {paused:%H:%M:%S}")
    for check in snapshot.credentials:
        if not check["ok"] and str(check["name"]).endswith("_contract"):
            found.append(f"contract with {check['name'].removesuffix('_contract')} broken")
        elif not check["ok"]:
            found.append(f"credentials for {check['name']} failing")
    if snapshot.open_dead_letters:
        found.append(f"{snapshot.open_dead_letters} open dead letter(s)")
    lag = lag_seconds(snapshot, now)
    if lag > MAX_HEALTHY_LAG.total_seconds():
        found.append(f"oldest pending operation waited {lag:.0f} s")
    for run in snapshot.scheduled:
        if run["status"] in ("failed", "abandoned"):
            found.append(f"last {run['job']} run {run['status']}")
    return found


def as_json(snapshot: Snapshot, now: datetime, warnings: list[str]) -> dict[str, Any]:
    """`status --json`: the verdict and everything it was drawn from."""
    found = problems(snapshot, now)
    return {
        "healthy": not found,
        "problems": found,
        "queue": snapshot.queue,
        "sync_lag_s": round(lag_seconds(snapshot, now), 3),
        "open_dead_letters": snapshot.open_dead_letters,
        "breakers": snapshot.breakers,
        "scheduled_runs": snapshot.scheduled,
        "credentials": snapshot.credentials,
        "pending_migrations": snapshot.pending_migrations,
        "unlinked": snapshot.unlinked,
        "warnings": warnings,
    }
