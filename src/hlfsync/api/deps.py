"""The dependencies routes declare, as `Annotated` aliases so a route reads as a sentence:
`async def list_mentors(db: CallerDb, limit: Limit = 50)`.

Owns where the app's state lives, how a bearer token becomes a `Caller`, and the per-request
connection that runs as that caller (committed before the response is sent).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hlfsync.api import auth, rls
from hlfsync.api.metrics import Metrics
from hlfsync.api.problems import unauthorized
from hlfsync.core.clock import Clock
from hlfsync.db.migrate import Migration
from hlfsync.db.pool import Pool
from hlfsync.settings import Settings


@dataclass
class AppState:
    """What the app holds between requests; the lifespan fills `pool`."""

    settings: Settings
    secret: str
    clock: Clock
    metrics: Metrics
    migrations: list[Migration]
    pool: Pool | None = None

    def require_pool(self) -> Pool:
        if self.pool is None:
            raise RuntimeError("the API's pool is not open (lifespan not started)")
        return self.pool


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.hlfsync
    return state


State = Annotated[AppState, Depends(app_state)]

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="A Supabase-style access token (HS256 JWT, `aud` authenticated, `sub` the user).",
)


async def current_caller(
    state: State,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> auth.Caller:
    if credentials is None:
        raise unauthorized("a bearer token is required")
    return auth.verify(
        credentials.credentials, secret=state.secret, audience=state.settings.jwt_audience
    )


CurrentCaller = Annotated[auth.Caller, Depends(current_caller)]


async def caller_connection(state: State, caller: CurrentCaller) -> AsyncIterator[rls.Conn]:
    async with rls.as_caller(state.require_pool(), caller) as conn:
        yield conn


# scope="function": the transaction ends with the route, before the response goes out, so a
# client that got 202 for a force-sync finds the operation in its very next request.
CallerDb = Annotated[rls.Conn, Depends(caller_connection, scope="function")]
