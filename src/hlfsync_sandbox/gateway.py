"""The front door of every emulated endpoint: request log, latency, fault rules, rate limit.

A pure ASGI middleware, so it can do what a handler cannot: hang without answering, or drop the
connection mid-response. Admin routes (`/_sandbox/...`) pass straight through, unlogged.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
import time
from typing import Any, cast

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hlfsync_sandbox import faults, wire
from hlfsync_sandbox.requestlog import LogEntry
from hlfsync_sandbox.state import SandboxState

ENTRY_KEY = "hlfsync_sandbox.entry"
CORRELATION_HEADERS = (b"x-ms-client-request-id", b"x-correlation-id", b"client-request-id")
RESET_PROMISED_BYTES = 4096  # what the dropped response claims it will send
GOOGLE_TOKEN_PATH = "/token"  # noqa: S105 - a path (sandbox.tokens serves Google's token endpoint)

_CONTACT_IN_PATH = re.compile(r"/api/data/v9\.2/[A-Za-z_][A-Za-z0-9_]*\(\{?([0-9A-Fa-f-]{36})\}?\)")
_PREFIXES = (
    ("/api/data/", "dataverse"),
    ("/_sandbox", None),
    ("/v1/projects/", "fcm"),
    ("/webhook", "webhook"),
    ("/common/discovery/", "discovery"),
)
_resetting: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "hlfsync_sandbox_resetting", default=False
)


class Injected(Exception):  # noqa: N818 - a signal to the gateway, not an error
    """Raised by a handler that meets a hang or reset fault only after reading the request."""

    def __init__(self, fault: faults.Fault) -> None:
        super().__init__(fault.label)
        self.fault = fault


class _QuietReset(logging.Filter):
    """Uvicorn logs an error when a response is cut short; an injected reset does so on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _resetting.get()


def install_log_filter() -> None:
    uvicorn_error = logging.getLogger("uvicorn.error")
    if not any(isinstance(existing, _QuietReset) for existing in uvicorn_error.filters):
        uvicorn_error.addFilter(_QuietReset())


def entry(request: Request) -> LogEntry:
    """The log entry the gateway opened for this request; handlers add what they learn."""
    return cast(LogEntry, request.scope[ENTRY_KEY])


def contact_id(path: str) -> str | None:
    match = _CONTACT_IN_PATH.match(path)
    return None if match is None else match.group(1).lower()


def classify(path: str) -> str | None:
    """Which emulated service a path belongs to; None for the admin API."""
    for prefix, kind in _PREFIXES:
        if path.startswith(prefix):
            return kind
    if path == "/token" or path.endswith("/oauth2/v2.0/token"):
        return "token"
    if "/.well-known/" in path:
        return "discovery"
    return "other"


def fault_reply(
    state: SandboxState, kind: str, fault: faults.Fault, *, path: str | None = None
) -> wire.Reply:
    """The response an injected status fault sends: the service's own error shape by default."""
    status = cast(int, fault.action)
    if fault.body is not None:
        reply = wire.Reply(status, fault.body.encode(), {"content-type": wire.JSON})
    elif kind == "token" and path == GOOGLE_TOKEN_PATH:  # Google's token endpoint, not Entra's
        reply = wire.google_token_fault(status)
    elif fault.label == "rate_limit":
        limit = state.faults.config.rate_limit_per_s or 0.0
        reply = wire.odata_error(429, wire.DV_THROTTLED, wire.throttled_message(limit, 1))
    elif fault.label.startswith("service_protection:"):
        reply = _protection_reply(state, fault.label.partition(":")[2])
    else:
        reply = wire.fault_reply(
            cast(wire.Kind, kind), status, tenant_id=state.credentials.tenant_id
        )
    if fault.content_type is not None:
        reply.headers["content-type"] = fault.content_type
    if fault.retry_after is not None:
        reply.headers["retry-after"] = wire.retry_after_value(fault.retry_after)
    elif status == 429 and kind == "dataverse":
        # Dataverse sends Retry-After with every 429, in whole seconds.
        reply.headers["retry-after"] = wire.retry_after_value(wire.DEFAULT_429_RETRY_AFTER_S)
    return reply


def _protection_reply(state: SandboxState, limit: str) -> wire.Reply:
    config = state.faults.config.service_protection
    window = config.window_s if config else 300.0
    if limit == "execution":
        millis = config.execution_ms if config else 1_200_000.0
        return wire.odata_error(429, wire.DV_EXECUTION_TIME, wire.execution_message(millis, window))
    requests = config.requests if config else 6000
    return wire.odata_error(429, wire.DV_THROTTLED, wire.throttled_message(requests, window))


class Gateway:
    """Wraps the Starlette router; sits inside Starlette's error middleware (see `app`)."""

    def __init__(self, app: ASGIApp, state: SandboxState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = classify(scope["path"]) if scope["type"] == "http" else None
        if kind is None:
            await self.app(scope, receive, send)
            return
        state = self.state
        path: str = scope["path"]
        method: str = scope["method"]
        correlation = None
        for name, value in scope["headers"]:
            if name in CORRELATION_HEADERS:
                correlation = value.decode("latin-1")
                break
        log_entry = LogEntry(
            method=method,
            path=path,
            kind=kind,
            at=state.clock(),
            query=scope["query_string"].decode("latin-1"),
            contactid=contact_id(path) if kind == "dataverse" else None,
            correlation_id=correlation,
        )
        scope[ENTRY_KEY] = log_entry
        started = time.perf_counter()
        response_started = False

        async def send_and_note(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                log_entry.status = message["status"]
            await send(message)

        try:
            latency_s = state.faults.latency_s
            if latency_s > 0:
                await asyncio.sleep(latency_s)
            fault = state.faults.decide(kind, method, path, log_entry.contactid)
            # Service protection counts per user; the sandbox has one app user per client id.
            user = state.credentials.client_id
            if fault is None and kind == "dataverse":
                fault = state.faults.throttle(time.monotonic(), user)
            if fault is None:
                mark = state.faults.shared.start(time.perf_counter())
                try:
                    await self.app(scope, receive, send_and_note)
                except Injected as injected:
                    if response_started:
                        raise
                    fault = injected.fault
                finally:
                    # Execution time: the emulated latency plus this call's own share of the
                    # sandbox, not the time it waited behind the other calls in flight.
                    own = state.faults.shared.finish(time.perf_counter(), mark)
                    if kind == "dataverse":
                        state.faults.charge(user, latency_s + own)
            if fault is not None:
                log_entry.fault = fault.label
                await self._misbehave(
                    scope, receive, send_and_note, kind=kind, fault=fault, log_entry=log_entry
                )
        finally:
            log_entry.duration_ms = (time.perf_counter() - started) * 1000.0
            state.log.append(log_entry)

    async def _misbehave(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        kind: str,
        fault: faults.Fault,
        log_entry: LogEntry,
    ) -> None:
        if fault.action == "reset":
            await _reset(send)
            log_entry.status = 0
        elif fault.action == "timeout":
            gone = await _hang(receive, fault.hang_s, self.state.closing)
            if gone == "client":
                return
            if gone == "closing":
                await _reset(send)
                log_entry.status = 0
                return
            # The client outwaited the hang: answer as a load balancer that gave up would.
            page = b"<html><body><h1>504 Gateway Time-out</h1></body></html>"
            await wire.Reply(504, page, {"content-type": "text/html"}).response()(
                scope, receive, send
            )
        else:
            reply = fault_reply(self.state, kind, fault, path=scope["path"])
            await reply.response()(scope, receive, send)


async def _reset(send: Send) -> None:
    # ASGI cannot reach the socket, but a response that stops short of its Content-Length makes
    # uvicorn close the connection: the client sees a truncated body and a closed socket.
    _resetting.set(True)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(RESET_PROMISED_BYTES).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b'{"value":[', "more_body": True})


async def _hang(receive: Receive, hang_s: float, closing: asyncio.Event) -> str:
    """Wait for the client to leave, the server to stop, or `hang_s`: "client"|"closing"|"bound"."""

    async def client_gone() -> None:
        while True:
            message: dict[str, Any] = dict(await receive())
            if message["type"] == "http.disconnect":
                return

    gone = asyncio.ensure_future(client_gone())
    stop = asyncio.ensure_future(closing.wait())
    try:
        done, _ = await asyncio.wait({gone, stop}, timeout=hang_s, return_when="FIRST_COMPLETED")
    finally:
        for task in (gone, stop):
            task.cancel()
        await asyncio.gather(gone, stop, return_exceptions=True)
    if gone in done:
        return "client"
    return "closing" if stop in done else "bound"
