"""The credential health check: a token and a WhoAmI against Dynamics, recorded and alerted.

A failure raises one administrator alert per failing spell (not one per check) and holds the
breaker open; the first success afterwards records recovery and closes a breaker held for
credentials, so the operations waiting for them run again.
"""

from __future__ import annotations

from typing import Any

import structlog

from hlfsync.core.clock import Clock
from hlfsync.core.errors import AuthFailure, SyncFailure
from hlfsync.dataverse.base import DynamicsClient
from hlfsync.db import health
from hlfsync.db.breaker import DynamicsCircuitBreaker
from hlfsync.db.pool import Pool

log = structlog.get_logger(__name__)

CHECK = "dynamics"


async def check_credentials(
    pool: Pool, client: DynamicsClient, breaker: DynamicsCircuitBreaker, clock: Clock
) -> dict[str, Any]:
    """Run the check once; returns what the status table and the scheduler record."""
    try:
        identity = await client.who_am_i()
    except AuthFailure as failure:
        now = clock.now()
        alerted = await health.record_failure(
            pool, name=CHECK, contract=client.contract, detail=failure.summary(), now=now
        )
        await breaker.on_auth_failure(now, failure.summary())
        return {"ok": False, "auth": True, "detail": failure.summary(), "alerted": alerted}
    except SyncFailure as failure:
        # Dynamics is down or slow: not a credential problem, and the breaker's business.
        log.warning("health_check_inconclusive", detail=failure.summary())
        return {"ok": False, "auth": False, "detail": failure.summary(), "alerted": False}
    now = clock.now()
    recovered = await health.record_ok(
        pool, name=CHECK, detail=f"WhoAmI user {identity.user_id}", now=now
    )
    view = await breaker.refresh()
    if view.auth_failed:
        await breaker.on_success(now)
    return {"ok": True, "user_id": identity.user_id, "recovered": recovered}
