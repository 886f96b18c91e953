"""Serving the API with uvicorn inside a running event loop (`hlfsync api`, `run`, `demo`).

Everything that can fail at start (the secret, the database, the address) fails before uvicorn
runs, as one ConfigError line. The caller owns the process's signals: `serve` stops when its
`stop` event is set, and uvicorn is kept from installing handlers of its own (it would re-raise
SIGTERM after a graceful stop).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Iterator

import uvicorn

from hlfsync.api import limits
from hlfsync.api.app import create_app
from hlfsync.core.clock import Clock
from hlfsync.core.errors import ConfigError
from hlfsync.db import connect
from hlfsync.db.pool import Pool, open_pool
from hlfsync.settings import Settings


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(
    settings: Settings,
    stop: asyncio.Event,
    *,
    pool: Pool | None = None,
    host: str | None = None,
    port: int | None = None,
    clock: Clock | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the API and dashboard until `stop` is set; `on_ready(base_url)` once listening.

    `host`/`port` default to HLFSYNC_API_HOST/HLFSYNC_API_PORT; `port=0` picks a free port (the
    URL given to `on_ready` names it). A `pool` handed in is used and left open; otherwise one
    is opened here and closed on the way out.
    """
    app = create_app(settings, pool=pool, clock=clock)  # checks the secret first
    host = host or settings.api_host
    sock = _listen(host, settings.api_port if port is None else port)
    owned: Pool | None = None
    try:
        if pool is None:
            url = await asyncio.to_thread(connect.database_url, settings)
            owned = await open_pool(url, max_size=settings.db_pool_size, name="hlfsync-api")
            app.state.hlfsync.pool = owned
        config = uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            server_header=False,
            lifespan="on",
            timeout_graceful_shutdown=5,
            # The request head is bounded as it arrives (431), not after it was read in full.
            http=limits.limited_protocol(settings.max_header_bytes, settings.max_headers),
            # X-Forwarded-* are judged by the app (proxy.PublicAddress) against
            # HLFSYNC_TRUSTED_PROXIES; uvicorn's default would trust 127.0.0.1 for them.
            proxy_headers=False,
        )
        await _run(_Server(config), sock, host, stop, on_ready)
    finally:
        sock.close()
        if owned is not None:
            await owned.close()


async def _run(
    server: _Server,
    sock: socket.socket,
    host: str,
    stop: asyncio.Event,
    on_ready: Callable[[str], None] | None,
) -> None:
    running = asyncio.create_task(server.serve(sockets=[sock]), name="hlfsync-api")
    stopping = asyncio.create_task(stop.wait())
    try:
        while not server.started and not running.done() and not stop.is_set():
            await asyncio.wait({running, stopping}, timeout=0.05)
        if server.started and on_ready is not None:
            on_ready(base_url(host, sock.getsockname()[1]))
        await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        server.should_exit = True
        stopping.cancel()
        await running


def _listen(host: str, port: int) -> socket.socket:
    """The bound socket uvicorn will serve on; a taken address is one line, not a traceback."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
    # without it a response written in two parts waits out the client's delayed ACK (~40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port} (HLFSYNC_API_HOST/HLFSYNC_API_PORT): {exc.strerror}"
        ) from exc
    return sock


def base_url(host: str, port: int) -> str:
    """http://host:port for a bound address; a wildcard host is shown as 127.0.0.1."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"
