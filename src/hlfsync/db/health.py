"""Credential health: the last check per remote system, and one admin alert per failing spell."""

from __future__ import annotations

from datetime import datetime

import structlog
from psycopg.types.json import Jsonb

from hlfsync.db.pool import Pool
from hlfsync.db.queries import q
from hlfsync.notify import payloads

log = structlog.get_logger(__name__)


async def record_failure(
    pool: Pool, *, name: str, contract: str, detail: str, now: datetime
) -> bool:
    """Store a failing check; raise the administrator alert when this starts an incident.

    Returns True when an alert was raised (the first failure of a spell).
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
                    "kind": "auth_failure",
                    "key": f"{name}:{incident}",
                    "payload": Jsonb(payloads.build_auth_alert_data(contract)),
                    "details": Jsonb({"check": name, "detail": detail, "incident": incident}),
                    "now": now,
                },
            )
        ).fetchone()
    if alert is not None:
        log.error("credentials_failing", check=name, detail=detail, incident=incident)
    return alert is not None


async def record_ok(pool: Pool, *, name: str, detail: str, now: datetime) -> bool:
    """Store a working check; True when it ends a failing spell."""
    async with pool.connection() as conn:
        row = await (
            await conn.execute(q("credential_ok"), {"name": name, "now": now, "detail": detail})
        ).fetchone()
    recovered = bool(row and row[0])
    if recovered:
        log.info("credentials_recovered", check=name)
    return recovered
