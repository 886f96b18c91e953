"""Credential health: the last check per remote system, and one admin alert per failing spell."""

from __future__ import annotations

from datetime import datetime

import structlog
from psycopg.types.json import Jsonb

from hlfsync.db.pool import Pool
from hlfsync.db.queries import q
from hlfsync.notify import payloads

log = structlog.get_logger(__name__)


# The checks whose failing spells hold the sync, and the alert each spell raises (once).
CREDENTIALS = "dynamics"
CONTRACT = "dynamics_contract"
HOLD_CHECKS = {"auth": CREDENTIALS, "contract": CONTRACT}
ALERT_KINDS = {CREDENTIALS: "auth_failure", CONTRACT: "contract_failure"}
CONTRACT_ALERT_TYPE = "hlf_sync_contract_failure"
RECOVERED_ALERT_TYPE = "hlf_sync_recovered"


def _alert_payload(name: str, contract: str) -> dict[str, str]:
    if ALERT_KINDS.get(name) == "contract_failure":
        return {"type": CONTRACT_ALERT_TYPE, "contract": contract}
    return payloads.build_auth_alert_data(contract)


async def record_failure(
    pool: Pool, *, name: str, contract: str, detail: str, now: datetime
) -> bool:
    """Store a failing check; raise the administrator alert when this starts an incident.

    Returns True when an alert was raised (the first failure of a spell). The alert carries the
    exact error (`detail`, already one redacted line).
    """
    async with pool.connection() as conn, conn.transaction():
        row = await (
            await conn.execute(q("credential_failed"), {"name": name, "now": now, "detail": detail})
        ).fetchone()
        if row is None:  # pragma: no cover - an upsert always returns its row
            raise RuntimeError("credential_health upsert returned nothing")
        incident, _new = row
        alert = await (
            await conn.execute(
                q("raise_admin_alert"),
                {
                    "kind": ALERT_KINDS.get(name, "auth_failure"),
                    "key": f"{name}:{incident}",
                    "payload": Jsonb(_alert_payload(name, contract)),
                    "details": Jsonb({"check": name, "detail": detail, "incident": incident}),
                    "now": now,
                },
            )
        ).fetchone()
    if alert is not None:
        log.error("credentials_failing", check=name, detail=detail, incident=incident)
    return alert is not None


async def record_ok(pool: Pool, *, name: str, detail: str, now: datetime) -> bool:
    """Store a working check; True when it ends a failing spell, which also raises one
    "recovered" notice for the administrators (once per incident)."""
    async with pool.connection() as conn, conn.transaction():
        row = await (
            await conn.execute(q("credential_ok"), {"name": name, "now": now, "detail": detail})
        ).fetchone()
        recovered = bool(row and row[0])
        if recovered and row is not None:
            await conn.execute(
                q("raise_admin_alert"),
                {
                    "kind": "hold_recovered",
                    "key": f"{name}:{row[1]}",
                    "payload": Jsonb({"type": RECOVERED_ALERT_TYPE, "check": name}),
                    "details": Jsonb({"check": name, "detail": detail, "incident": row[1]}),
                    "now": now,
                },
            )
    if recovered:
        log.info("credentials_recovered", check=name)
    return recovered


async def record_recovered(pool: Pool, *, detail: str, now: datetime) -> list[str]:
    """A call or probe succeeded while the sync was held: every failing hold check is over.
    Returns the checks that recovered (each raised its one notice)."""
    return [
        name
        for name in HOLD_CHECKS.values()
        if await record_ok(pool, name=name, detail=detail, now=now)
    ]


async def audit_write_probe(
    pool: Pool,
    *,
    correlation_id: str,
    contact_id: str,
    verdict: str,
    detail: str,
    now: datetime,
) -> None:
    """The health check wrote a contact's listing back as it was: audited like any call."""
    async with pool.connection() as conn:
        await conn.execute(
            q("audit_write_probe"),
            {"correlation_id": correlation_id, "contact_id": contact_id, "verdict": verdict,
             "detail": detail, "now": now},
        )  # fmt: skip
