"""/api/v1/alerts: the alerts about the caller's mentors (and, for administrators, operations)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from hlfsync.api import models, pages, store
from hlfsync.api.deps import CallerDb
from hlfsync.api.problems import API_ERRORS, responses

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"], responses=responses(*API_ERRORS))


@router.get("", responses=responses(400))
async def list_alerts(
    request: Request, db: CallerDb, limit: pages.Limit = pages.DEFAULT_LIMIT,
    cursor: pages.Cursor = None,
) -> models.AlertPage:  # fmt: skip
    """Alerts the caller may see, newest first."""
    items, last = await store.alert_page(db, before=pages.before_id(cursor), limit=limit)
    return models.AlertPage(
        items=items, next=None if last is None else pages.next_link(request, last)
    )
