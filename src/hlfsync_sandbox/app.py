"""`create_app(state)`: the sandbox as one ASGI application, every emulated service on one port.

Owns assembly only: routes from each service module, the gateway middleware, error handlers.
Nothing is built at import time, and the app serves whatever state it is given.
"""

from __future__ import annotations

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from hlfsync_sandbox import admin, fcm, gateway, tokens, webapi, webhook
from hlfsync_sandbox.state import SandboxState


def create_app(state: SandboxState) -> Starlette:
    """The sandbox app over `state`; serve it with any ASGI server (`server` uses uvicorn)."""
    gateway.install_log_filter()
    routes: list[BaseRoute] = [
        *webapi.routes(state),
        *tokens.routes(state),
        *fcm.routes(state),
        *webhook.routes(state),
        *admin.routes(state),
    ]
    # The gateway must sit inside Starlette's ServerErrorMiddleware (which `middleware=` gives)
    # so it sees a handler's `Injected` before that middleware turns it into a 500.
    return Starlette(
        routes=routes,
        middleware=[Middleware(gateway.Gateway, state=state)],
        exception_handlers={
            admin.BadInput: admin.bad_input,
            ValidationError: admin.bad_input,
        },
    )
