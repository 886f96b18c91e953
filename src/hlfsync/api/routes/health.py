"""Process endpoints without a caller: /healthz (alive), /readyz (database and schema), /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response

from hlfsync.api import models, rls
from hlfsync.api.deps import State
from hlfsync.api.problems import Problem, responses

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> models.Health:
    """The process is up and serving. Says nothing about the database (see /readyz)."""
    return models.Health(status="ok")


@router.get("/readyz", responses=responses(503))
async def readyz(state: State) -> models.Health:
    """Ready for traffic: the database answers and every migration this build ships is applied."""
    # An unreachable database, or one never migrated (no schema_migrations), is a 503 too.
    async with rls.as_service(state.require_pool()) as conn:
        applied = {int(r["version"]) for r in await rls.rows(conn, "api_applied_migrations")}
    pending = [m.name for m in state.migrations if m.version not in applied]
    if pending:
        raise Problem(
            503, f"{len(pending)} migration(s) not applied", kind="not-ready",
            extra={"pending_migrations": pending},
        )  # fmt: skip
    return models.Health(status="ready")


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}, **responses(503)},
)
async def metrics(state: State) -> Response:
    """Prometheus metrics: the system's state read from the database, and this process's own."""
    body = await state.metrics.render(state.require_pool())
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
