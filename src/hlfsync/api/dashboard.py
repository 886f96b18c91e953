"""/dashboard: the coordinator dashboard, server-rendered HTML over the same store as the API.

Overview (the caller's numbers and a 24-hour chart), mentors with their verdict, filters, search
and force sync, dead letters with re-queue and resolve, a mentor's timeline, and Help.
No script and no build step; forms POST and redirect back (POST/redirect/GET) with a notice
chosen from a fixed list, so nothing from the URL is ever echoed into the page.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlencode
from uuid import UUID

from fastapi import APIRouter, FastAPI, Form, Path, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from hlfsync.api import auth, chart, help, models, pages, rls, session, signin, store
from hlfsync.api.deps import AppState, State
from hlfsync.api.problems import Problem

HERE = FilePath(__file__).parent
T = TypeVar("T")
NOTICES = {
    "forced": "Sync queued: it goes ahead of the routine queue.",
    "requeued": "Dead letter re-queued.",
    "resolved": "Dead letter resolved.",
    "signed-out": "Signed out.",
    "not-found": "Not found, or not yours to see.",
    "not-open": "That dead letter is no longer open.",
    "no-contact": "That mentor has no Dynamics contact: nothing to sync.",
    "forbidden": "Not allowed.",
    "invalid-request": "Please write a note saying what was done.",
    "csrf": "The form had expired; please try again.",
}
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}

router = APIRouter(prefix="/dashboard", include_in_schema=False)
Csrf = Annotated[str | None, Form()]
LetterId = Annotated[int, Path(ge=1, le=2**63 - 1)]
MentorStatus = Literal["active", "paused", "inactive"]
Blank = Literal[""] | None
VERDICT_LABELS: dict[str, str] = {
    "in_step": "in step",
    "out_of_step": "out of step",
    "pending": "pending",
    "dead_lettered": "dead-lettered",
    "unlinked": "unlinked",
    "unconfirmed": "unconfirmed",
}


def _when(value: datetime | None) -> str:
    return "—" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@cache
def _templates() -> Jinja2Templates:
    """The template environment, built on first use (autoescaping HTML, as Starlette sets it)."""
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters["when"] = _when
    templates.env.globals["verdict_labels"] = VERDICT_LABELS
    return templates


def _render(request: Request, name: str, code: int = 200, **context: Any) -> HTMLResponse:
    notice = request.query_params.get("notice")
    context["notice"] = NOTICES.get(notice or "")
    context["notice_is_error"] = notice not in {"forced", "requeued", "resolved", "signed-out"}
    response = _templates().TemplateResponse(request, name, context, status_code=code)
    response.headers.update(HEADERS)
    return response


def _back(path: str, notice: str) -> RedirectResponse:
    # Only our own pages: `path` comes from routes below, never from the request.
    return RedirectResponse(f"/dashboard{path}?notice={notice}", status_code=303)


async def _as_signed_in(
    request: Request, state: AppState, work: Callable[[rls.Conn, models.Me], Awaitable[T]]
) -> tuple[T, dict[str, Any]]:
    """Run `work` as the signed-in caller (given who they are); also returns what every page
    shows about them."""
    who, token = session.caller(request, state.secret, state.settings.jwt_audience)
    async with rls.as_caller(state.require_pool(), who) as conn:
        me = await store.me(conn)
        result = await work(conn, me)
    return result, {"me": me, "csrf": session.csrf_token(state.secret, token)}


async def _act(
    request: Request, state: State, csrf: str | None, *, back: str, done: str,
    work: Callable[[rls.Conn], Awaitable[object]],
) -> RedirectResponse:  # fmt: skip
    """A form's action: check the CSRF token, run `work` as the caller, redirect with a notice."""
    who, token = session.caller(request, state.secret, state.settings.jwt_audience)
    if not session.csrf_ok(state.secret, token, csrf):
        return _back(back, "csrf")
    try:
        async with rls.as_caller(state.require_pool(), who) as conn:
            await work(conn)
    except Problem as problem:
        return _back(back, problem.kind)
    return _back(back, done)


@router.get("")
async def overview_page(request: Request, state: State) -> Response:
    now = state.clock.now()

    async def work(conn: rls.Conn, me: models.Me) -> dict[str, Any]:
        if not (me.chapters or me.administers):
            return {}
        return {
            "overview": await store.overview(conn, now, mine=True),
            "chart": chart.render(await store.hourly(conn, now)),
        }

    found, page = await _as_signed_in(request, state, work)
    if not found:
        return _render(request, "no_access.html", 403, **page)
    return _render(request, "overview.html", **page, **found)


@router.get("/mentors")
async def mentors_page(
    request: Request, state: State, *, cursor: pages.Cursor = None,
    status: Annotated[MentorStatus | Blank, Query()] = None,
    verdict: Annotated[models.Verdict | Blank, Query()] = None,
    chapter: Annotated[UUID | Blank, Query()] = None,
    q: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:  # fmt: skip
    # The filter form sends every field; an empty one means "any".
    status, verdict, chapter = status or None, verdict or None, chapter or None
    after = pages.after_id(cursor)
    where = store.MentorFilter(status=status, verdict=verdict, chapter=chapter, search=q)

    async def work(
        conn: rls.Conn, _me: models.Me
    ) -> tuple[list[models.Mentor], UUID | None, list[models.Named]]:
        items, last = await store.mentor_page(
            conn, after=after, limit=pages.DEFAULT_LIMIT, where=where
        )
        return items, last, await store.chapters(conn)

    (items, last, chapters), page = await _as_signed_in(request, state, work)
    # Only the filter's own values go back into links (validated above), never raw input.
    kept = {"status": status, "verdict": verdict, "chapter": chapter, "q": (q or "").strip()}
    query = {k: str(v) for k, v in kept.items() if v}
    more = None
    if last is not None:
        more = f"/dashboard/mentors?{urlencode({**query, 'cursor': pages.encode(str(last))})}"
    return _render(
        request, "mentors.html", **page, mentors=items, more=more, chapters=chapters,
        filters=kept, filtered=bool(query),
    )  # fmt: skip


@router.get("/help")
async def help_page(request: Request, state: State) -> Response:
    """The coordinators' guide (docs/coordinators.md), for anyone signed in."""
    _, page = await _as_signed_in(request, state, _nothing)
    return _render(request, "help.html", **page, guide=help.page())


async def _nothing(conn: rls.Conn, _me: models.Me) -> None:
    return None


@router.get("/mentors/{mentor_id}")
async def mentor_page(
    request: Request, mentor_id: UUID, state: State, cursor: pages.Cursor = None
) -> Response:
    before = pages.before_id(cursor)

    async def work(
        conn: rls.Conn, _me: models.Me
    ) -> tuple[models.MentorSync, list[models.AuditEvent], int | None]:
        sync = await store.mentor_sync(conn, mentor_id)
        events, last = await store.audit_page(conn, mentor_id, before=before, limit=100)
        return sync, events, last

    try:
        (sync, events, last), page = await _as_signed_in(request, state, work)
    except Problem as problem:
        if problem.status != 404:
            raise
        return _render(request, "missing.html", 404, me=None, csrf=None)
    more = None if last is None else f"/dashboard/mentors/{mentor_id}?cursor={pages.encode(last)}"
    return _render(request, "mentor.html", **page, sync=sync, events=events, more=more)


@router.post("/mentors/{mentor_id}/force-sync")
async def force_sync(
    request: Request, mentor_id: UUID, state: State, csrf: Csrf = None,
    back: Annotated[str | None, Form()] = None,
) -> RedirectResponse:  # fmt: skip
    target = f"/mentors/{mentor_id}" if back == "mentor" else "/mentors"
    return await _act(
        request, state, csrf, back=target, done="forced",
        work=lambda conn: store.force_sync(conn, mentor_id),
    )  # fmt: skip


@router.get("/dead-letters")
async def dead_letters_page(
    request: Request, state: State,
    status: Annotated[models.DeadLetterStatus | None, Query()] = "open",
    cursor: pages.Cursor = None,
) -> Response:  # fmt: skip
    before = pages.before_id(cursor)
    (items, last), page = await _as_signed_in(
        request,
        state,
        lambda conn, _me: store.dead_letter_page(
            conn, before=before, status=status, limit=pages.DEFAULT_LIMIT
        ),
    )
    more = None
    if last is not None:
        more = f"/dashboard/dead-letters?status={status or ''}&cursor={pages.encode(last)}"
    return _render(request, "dead_letters.html", **page, letters=items, status=status, more=more)


@router.post("/dead-letters/{letter_id}/requeue")
async def requeue(
    request: Request, letter_id: LetterId, state: State, csrf: Csrf = None
) -> Response:
    return await _act(
        request, state, csrf, back="/dead-letters", done="requeued",
        work=lambda conn: store.requeue(conn, letter_id),
    )  # fmt: skip


@router.post("/dead-letters/{letter_id}/resolve")
async def resolve(
    request: Request, letter_id: LetterId, state: State, csrf: Csrf = None,
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:  # fmt: skip
    return await _act(
        request, state, csrf, back="/dead-letters", done="resolved",
        work=lambda conn: store.resolve(conn, letter_id, note),
    )  # fmt: skip


@router.get("/login")
async def login_page(request: Request, state: State, code: str | None = None) -> Response:
    """The sign-in form; with `?code=` (the one-time link `hlfsync demo` prints) it signs in."""
    if code is not None:
        return await _redeem(request, state, code)
    return _login_form(request, state, 200, None)


@router.post("/login")
async def login(
    request: Request, state: State, token: Annotated[str, Form()] = "", csrf: Csrf = None
) -> Response:
    try:
        who = auth.verify(token.strip(), secret=state.secret, audience=state.settings.jwt_audience)
    except Problem as problem:
        return _login_form(request, state, 401, problem.detail, fresh=False)
    if not session.login_allowed(request, state.secret, csrf):  # login CSRF
        return _login_form(request, state, 403, "the sign-in form had expired; please try again")
    return _signed_in(request, state, token.strip(), who.claims)


async def _redeem(request: Request, state: AppState, code: str) -> Response:
    # A link opened from another site is refused (Sec-Fetch-Site, where the browser sends it):
    # it could only be someone else's code, signing this browser in as them.
    if request.headers.get("sec-fetch-site") == "cross-site":
        return _login_form(request, state, 403, "a sign-in link works only when opened directly")
    async with rls.as_service(state.require_pool()) as conn:
        user = await signin.redeem(conn, code)
    if user is None:
        return _login_form(
            request, state, 401, "the sign-in link has expired or was used", fresh=False
        )
    ttl_s = state.settings.session_ttl
    token = auth.mint_token(state.secret, user, ttl_s, state.settings.jwt_audience)
    return _signed_in(request, state, token, {"exp": time.time() + ttl_s})


def _login_form(
    request: Request, state: AppState, code: int, error: str | None, *, fresh: bool = True
) -> Response:
    """The sign-in form with its login-CSRF token; after a refused token (`fresh=False`) the
    browser's form cookie is reused and nothing is set: a failed sign-in sets no cookie."""
    nonce = None if fresh else request.cookies.get(session.LOGIN_COOKIE)
    if fresh:
        nonce, token = session.login_form(state.secret)
    else:
        token = session.login_token(state.secret, nonce) if nonce else ""
    page = _render(request, "login.html", code, me=None, csrf=None, error=error, login_csrf=token)
    if fresh and nonce:
        session.keep_login_form(page, request, nonce)
    return page


def _signed_in(request: Request, state: AppState, token: str, claims: dict[str, Any]) -> Response:
    response = RedirectResponse("/dashboard", status_code=303)
    response.headers.update(HEADERS)
    session.keep(response, request, token, claims, state.settings.session_ttl)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    # No CSRF check needed to forget a session: signing someone out harms nothing.
    response = _back("/login", "signed-out")
    session.forget(response, request)
    return response


@router.get("/style.css")
async def stylesheet() -> FileResponse:
    return FileResponse(HERE / "templates" / "style.css", media_type="text/css")


async def _sign_in_first(request: Request, exc: Exception) -> Response:
    response = RedirectResponse("/dashboard/login", status_code=303)
    session.forget(response, request)
    return response


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.add_exception_handler(session.SignInRequired, _sign_in_first)
