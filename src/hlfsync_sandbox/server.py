"""Serving the sandbox: `SandboxServer` (uvicorn in a thread, for tests and the demo) and `serve`.

Owns sockets, TLS, the files hlfsync reads (CA bundle, service-account JSON, env file) and the
`HLFSYNC_*` settings that point hlfsync at a running sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import socket
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import uvicorn
from uvicorn.server import HANDLED_SIGNALS

from hlfsync_sandbox import app, keys, state, tokens
from hlfsync_sandbox.client import AdminClient

Contract = Literal["dataverse-v9", "webhook-v1"]
STARTUP_TIMEOUT_S = 15.0


class _Uvicorn(uvicorn.Server):
    """Uvicorn that tells us, from inside its loop, the moment it accepts connections."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None]) -> None:
        super().__init__(config)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().startup(sockets=sockets)
        if self.started:
            self._on_started()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Uvicorn re-raises the signal after a graceful stop, so the process dies of it (and
        # SIGINT prints a KeyboardInterrupt traceback); `hlfsync sandbox` should just return.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in HANDLED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


class SandboxServer:
    """The sandbox on 127.0.0.1 and a free port, over HTTPS with a CA made for this run.

    `with SandboxServer() as sandbox:` starts it; `sandbox.env()` gives hlfsync's settings and
    `sandbox.admin()` the control client. Files go to `data_dir` (a temporary directory, removed
    on stop, when none is given).
    """

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: bool = True,
        tenant_id: str = state.DEFAULT_TENANT_ID,
        client_id: str = state.DEFAULT_CLIENT_ID,
        client_secret: str | None = None,
        webhook_secret: str | None = None,
        fcm_project_id: str = state.DEFAULT_FCM_PROJECT,
        settings: state.SandboxSettings | None = None,
    ) -> None:
        self.state = state.SandboxState(
            tenant_id=tenant_id,
            client_id=client_id,
            client_secret=client_secret,
            webhook_secret=webhook_secret,
            fcm_project_id=fcm_project_id,
            settings=settings,
        )
        self._host = host
        self._port = port
        self._tls = keys.make_tls(host) if tls else None
        self._temp: tempfile.TemporaryDirectory[str] | None = None
        if data_dir is None:
            self._temp = tempfile.TemporaryDirectory(prefix="hlfsync-sandbox-")
            data_dir = Path(self._temp.name)
        self.data_dir = data_dir
        self.ca_path = data_dir / "sandbox-ca.pem"
        self.fcm_credentials_path = data_dir / "sandbox-fcm-service-account.json"
        self.url = ""
        self._uvicorn: _Uvicorn | None = None
        self._thread: threading.Thread | None = None
        self._admin: AdminClient | None = None

    # Credentials are read from the live state, so they follow a rotation made over HTTP.
    @property
    def tenant_id(self) -> str:
        return self.state.credentials.tenant_id

    @property
    def client_id(self) -> str:
        return self.state.credentials.client_id

    @property
    def client_secret(self) -> str:
        return self.state.credentials.client_secret

    @property
    def webhook_secret(self) -> str:
        return self.state.credentials.webhook_secret

    @property
    def fcm_project_id(self) -> str:
        return self.state.fcm_project_id

    @property
    def authority(self) -> str:
        return f"{self.url}/{self.tenant_id}"

    @property
    def fcm_token_uri(self) -> str:
        return self.url + tokens.GOOGLE_TOKEN_PATH

    def env(self, contract: Contract = "dataverse-v9") -> dict[str, str]:
        """The `HLFSYNC_*` settings that point hlfsync at this sandbox."""
        url = self.url
        values = {
            "HLFSYNC_DYNAMICS_CONTRACT": contract,
            "HLFSYNC_DYNAMICS_URL": url if contract == "dataverse-v9" else f"{url}/webhook",
            "HLFSYNC_DYNAMICS_TENANT_ID": self.tenant_id,
            "HLFSYNC_DYNAMICS_CLIENT_ID": self.client_id,
            "HLFSYNC_DYNAMICS_CLIENT_SECRET": self.client_secret,
            "HLFSYNC_DYNAMICS_AUTHORITY": self.authority,
            "HLFSYNC_DYNAMICS_ENTITY_SET": self.state.settings.entity_set,
            "HLFSYNC_DYNAMICS_LISTING_FIELD": self.state.settings.listing_field,
            "HLFSYNC_DYNAMICS_WEBHOOK_SECRET": self.webhook_secret,
            "HLFSYNC_FCM_PROJECT_ID": self.fcm_project_id,
            "HLFSYNC_FCM_CREDENTIALS": str(self.fcm_credentials_path),
            "HLFSYNC_FCM_ENDPOINT": url,
            "HLFSYNC_FCM_TOKEN_URI": self.fcm_token_uri,
        }
        if self._tls is not None:
            values["HLFSYNC_DYNAMICS_CA_BUNDLE"] = str(self.ca_path)
        return values

    def write_env(self, path: Path, contract: Contract = "dataverse-v9") -> Path:
        """`KEY=value` lines, readable by the owner only: the file holds the client secret."""
        path.parent.mkdir(parents=True, exist_ok=True)
        text = "".join(f"{key}={value}\n" for key, value in self.env(contract).items())
        partial = path.with_name(path.name + ".partial")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        partial.replace(path)
        return path

    def client_ssl_context(self) -> ssl.SSLContext | bool:
        """What an httpx client should pass as `verify` to trust this sandbox."""
        return True if self._tls is None else self._tls.client_context()

    def admin(self) -> AdminClient:
        """The control client (one per server, closed on stop)."""
        if self._admin is None:
            self._admin = AdminClient(self.url, verify=self.client_ssl_context())
        return self._admin

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> SandboxServer:
        """Start serving in a background thread; returns once connections are accepted."""
        started = threading.Event()
        server, sock = self._prepare(started.set, log_config=None, log_level=None)

        def run() -> None:
            try:
                server.run(sockets=[sock])
            finally:
                started.set()  # wake start() even when startup failed
                sock.close()

        self._uvicorn = server
        self._thread = threading.Thread(target=run, name="hlfsync-sandbox", daemon=True)
        self._thread.start()
        if not started.wait(STARTUP_TIMEOUT_S) or not server.started:
            self.stop()
            raise RuntimeError("the hlfsync sandbox did not start")
        return self

    def serve_forever(self, on_ready: Callable[[SandboxServer], None] | None = None) -> None:
        """Serve in this thread until SIGINT/SIGTERM (uvicorn handles the signals)."""
        server, sock = self._prepare(
            lambda: on_ready(self) if on_ready else None,
            log_config=uvicorn.config.LOGGING_CONFIG,
            log_level="warning",
        )
        self._uvicorn = server
        try:
            server.run(sockets=[sock])
        finally:
            sock.close()

    def stop(self) -> None:
        # Our own idle keep-alive connection would hold uvicorn's graceful shutdown open.
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        server, thread = self._uvicorn, self._thread
        if server is not None:
            loop = server.loop
            if loop is not None and not loop.is_closed():
                # Let hanging "timeout" faults go, or shutdown would wait for them; the loop may
                # close between the check and the call.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(self.state.closing.set)
            server.should_exit = True
        if thread is not None:
            thread.join(timeout=10.0)
            if thread.is_alive() and server is not None:
                server.force_exit = True
                thread.join(timeout=5.0)
        self._uvicorn = self._thread = None
        if self._temp is not None:
            self._temp.cleanup()
            self._temp = None

    def _prepare(
        self, on_started: Callable[[], None], *, log_config: Any, log_level: str | None
    ) -> tuple[_Uvicorn, socket.socket]:
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
        # and without it every reply waited out a delayed ACK (about 40 ms).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            return self._configure(sock, on_started, log_config=log_config, log_level=log_level)
        except BaseException:
            sock.close()
            raise

    def _configure(
        self,
        sock: socket.socket,
        on_started: Callable[[], None],
        *,
        log_config: Any,
        log_level: str | None,
    ) -> tuple[_Uvicorn, socket.socket]:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._port))
        port = sock.getsockname()[1]
        shown = "127.0.0.1" if self._host in ("0.0.0.0", "::", "") else self._host  # noqa: S104
        if ":" in shown:
            shown = f"[{shown}]"
        self.url = f"{'https' if self._tls else 'http'}://{shown}:{port}"
        self.state.closing = asyncio.Event()  # a fresh one per run: events bind to one loop
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._tls is not None:
            self._tls.write_ca(self.ca_path)
        self.state.service_account.write(self.fcm_credentials_path, self.fcm_token_uri)
        tls = self._tls

        def ssl_context(_config: uvicorn.Config, _default: Callable[[], ssl.SSLContext]) -> Any:
            return None if tls is None else tls.server_context()

        config = uvicorn.Config(
            app.create_app(self.state),
            lifespan="off",
            log_config=log_config,
            log_level=log_level,
            access_log=False,
            server_header=False,
            timeout_keep_alive=60,
            timeout_graceful_shutdown=1,
            ssl_context_factory=None if tls is None else ssl_context,
        )
        return _Uvicorn(config, on_started), sock


def serve(
    host: str,
    port: int,
    env_file: Path | None,
    data_dir: Path,
    *,
    tenant_id: str = state.DEFAULT_TENANT_ID,
    client_id: str = state.DEFAULT_CLIENT_ID,
    client_secret: str | None = None,
    webhook_secret: str | None = None,
    fcm_project_id: str = state.DEFAULT_FCM_PROJECT,
    on_ready: Callable[[SandboxServer], None] | None = None,
) -> None:
    """`hlfsync sandbox`: serve until interrupted; print where, and write `env_file` once up.

    Tenant and client ids have fixed defaults (documented); secrets are random per run unless
    given. The CA, service-account JSON and env file go to `data_dir` / `env_file`.
    """
    # Full collections walk every contact and request-log entry, holding every request for a
    # tenth of a second at 100,000 contacts; the real service has no such pauses. Young objects
    # every 50,000 allocations, the whole heap every 100 of those.
    gc.set_threshold(50_000, 10, 10)
    sandbox = SandboxServer(
        data_dir,
        host=host,
        port=port,
        tenant_id=tenant_id,
        client_id=client_id,
        client_secret=client_secret,
        webhook_secret=webhook_secret,
        fcm_project_id=fcm_project_id,
    )

    def ready(running: SandboxServer) -> None:
        if env_file is not None:
            running.write_env(env_file)
        print(f"hlfsync sandbox listening on {running.url}", flush=True)
        print(f"  CA bundle: {running.ca_path}", flush=True)
        if env_file is not None:
            print(f"  settings:  {env_file}", flush=True)
        if on_ready is not None:
            on_ready(running)

    sandbox.serve_forever(ready)
