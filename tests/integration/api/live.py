"""The API served by uvicorn on 127.0.0.1 in a background thread, through `hlfsync.api.serve`:
what the browser tests and Schemathesis talk to over a real socket."""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType

from hlfsync.api import serve
from hlfsync.settings import Settings

STARTUP_TIMEOUT_S = 20.0


class LiveServer:
    """`with LiveServer(settings) as server:` serves until the block ends; `server.url`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = ""
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="hlfsync-api-test", daemon=True)
        self._error: BaseException | None = None

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await serve(self.settings, self._stop, host="127.0.0.1", port=0,
                        on_ready=self._started)  # fmt: skip

        try:
            asyncio.run(main())
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            self._error = exc
        finally:
            self._ready.set()

    def _started(self, url: str) -> None:
        self.url = url
        self._ready.set()

    def __enter__(self) -> LiveServer:
        self._thread.start()
        if not self._ready.wait(STARTUP_TIMEOUT_S) or not self.url:
            self.__exit__(None, None, None)
            raise RuntimeError(f"the API did not start: {self._error!r}")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=15)
        if self._error is not None:
            raise self._error
