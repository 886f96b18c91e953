"""/api/v1/me and /api/v1/overview: who the caller is, and the system's operational state."""

from __future__ import annotations

from fastapi import APIRouter

from hlfsync.api import models, store
from hlfsync.api.deps import CallerDb, State
from hlfsync.api.problems import responses

router = APIRouter(prefix="/api/v1", tags=["caller"], responses=responses(401, 422, 500, 503))


@router.get("/me")
async def who_am_i(db: CallerDb) -> models.Me:
    """The caller's user, the chapters they coordinate and the organisations they administer."""
    return await store.me(db)


@router.get("/overview", responses=responses(403))
async def overview(db: CallerDb, state: State) -> models.Overview:
    """Queue depth, sync lag, breaker, dead letters, scheduled runs, credentials: global
    operational state for coordinators and administrators (403 for anyone else)."""
    return await store.overview(db, state.clock.now())
