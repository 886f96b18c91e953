"""RFC 9457 problem details: every error the API returns is `application/problem+json`.

Owns the `Problem` exception routes raise, its response model for the OpenAPI document, and the
handlers that turn FastAPI's own errors (validation, unknown route, crash) into the same shape.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, cast

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

MEDIA_TYPE = "application/problem+json"
# What any /api/v1 route may answer besides its own cases: no or bad token, a refusal from the
# database, bad parameters, a crash, the database away.
API_ERRORS = (401, 403, 422, 500, 503)
TYPE_BASE = "https://hlfsync.invalid/problems/"

log = structlog.get_logger("hlfsync.api")


class ProblemDetail(BaseModel):
    """An RFC 9457 problem document."""

    type: str = Field(examples=[TYPE_BASE + "not-found"])
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="Field-level errors of a 422, as FastAPI reports them."
    )


class Problem(Exception):  # noqa: N818 - it is the RFC's name for the thing
    """An error answer: raise it anywhere below a route."""

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        kind: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or HTTPStatus(status).phrase)
        self.status = status
        self.detail = detail
        self.kind = kind or HTTPStatus(status).phrase.lower().replace(" ", "-")
        self.headers = headers
        self.extra = extra or {}


def unauthorized(detail: str) -> Problem:
    return Problem(401, detail, kind="unauthorized", headers={"WWW-Authenticate": "Bearer"})


def not_found(what: str) -> Problem:
    return Problem(404, f"{what} not found", kind="not-found")


def render(request: Request, problem: Problem) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_BASE + problem.kind,
        "title": HTTPStatus(problem.status).phrase,
        "status": problem.status,
        "instance": request.url.path,
    }
    if problem.detail:
        body["detail"] = problem.detail
    body.update(problem.extra)
    return JSONResponse(body, problem.status, headers=problem.headers, media_type=MEDIA_TYPE)


async def _problem(request: Request, exc: Exception) -> JSONResponse:
    return render(request, cast(Problem, exc))


async def _http(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(StarletteHTTPException, exc)
    detail: str | None = exc.detail if isinstance(exc.detail, str) else None
    if detail == HTTPStatus(exc.status_code).phrase:
        detail = None
    headers = dict(exc.headers) if exc.headers else None
    return render(request, Problem(exc.status_code, detail, headers=headers))


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    errors = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")}
        for e in cast(RequestValidationError, exc).errors()
    ]
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(part) for part in first["loc"])
    return render(
        request,
        Problem(422, f"{where}: {first['msg']}", kind="invalid-request", extra={"errors": errors}),
    )


async def _crash(request: Request, exc: Exception) -> JSONResponse:
    # The traceback goes to the log, never to the client.
    log.error("api_unhandled", path=request.url.path, error=type(exc).__name__, exc_info=exc)
    return render(request, Problem(500, "internal error; see the server log", kind="internal"))


def install(app: FastAPI) -> None:
    """Route every error through the problem renderer."""
    app.add_exception_handler(Problem, _problem)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(Exception, _crash)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` entry for these error statuses."""
    return {
        status: {
            "model": ProblemDetail,
            "description": HTTPStatus(status).phrase,
            "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/ProblemDetail"}}},
        }
        for status in statuses
    }
