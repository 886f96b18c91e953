"""The API application: `create_app(settings)` wires routers, errors, dashboard and metrics.

Nothing is built at import. The lifespan opens the connection pool (unless one is handed in,
which then stays the caller's to close) and closes it on shutdown.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import hlfsync
from hlfsync.api import auth, dashboard, limits, problems, proxy
from hlfsync.api.deps import AppState
from hlfsync.api.metrics import Metrics
from hlfsync.api.routes import ROUTERS
from hlfsync.core.clock import Clock, SystemClock
from hlfsync.db import connect, migrate
from hlfsync.db.pool import Pool, open_pool
from hlfsync.settings import Settings

DESCRIPTION = """\
Sync state of HLF's peer mentors for coordinators and the app. Every request runs under the
caller's JWT with row-level security: a coordinator sees the mentors of the chapters they
coordinate, an organisation administrator their organisation. Errors are
`application/problem+json` (RFC 9457). Lists are keyset-paginated: follow `next` until null.
"""


def create_app(
    settings: Settings, *, pool: Pool | None = None, clock: Clock | None = None
) -> FastAPI:
    """The API and dashboard for `settings`; fails with ConfigError without a usable JWT secret."""
    secret = auth.check_secret(
        settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
    )
    clock = clock or SystemClock()
    state = AppState(
        settings=settings,
        secret=secret,
        clock=clock,
        metrics=Metrics(clock),
        migrations=migrate.available(),
        pool=pool,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        owned: Pool | None = None
        if state.pool is None:
            # Finding the URL may start the embedded server: blocking work, off the loop.
            url = await asyncio.to_thread(connect.database_url, settings)
            owned = await open_pool(url, max_size=settings.db_pool_size, name="hlfsync-api")
            state.pool = owned
        try:
            yield
        finally:
            if owned is not None:
                state.pool = None
                await owned.close()

    app = FastAPI(
        title="hlfsync",
        version=hlfsync.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=[
            {"name": "mentors", "description": "The caller's mentors and their sync state."},
            {"name": "dead letters", "description": "Operations that failed for good."},
            {"name": "alerts", "description": "Alerts about the caller's mentors."},
            {"name": "caller", "description": "Who the caller is; operational overview."},
            {"name": "operations", "description": "Health, readiness and metrics."},
        ],
    )
    app.state.hlfsync = state
    problems.install(app)
    for router in ROUTERS:
        app.include_router(router)
    dashboard.install(app)
    # Outermost last: size limits before anything else, then the public address.
    app.add_middleware(
        proxy.PublicAddress,
        public_url=settings.public_url,
        trusted_proxies=settings.trusted_proxies,
    )
    app.add_middleware(
        limits.Limits,
        max_header_bytes=settings.max_header_bytes,
        max_headers=settings.max_headers,
        max_body_bytes=settings.max_body_bytes,
    )
    return app
