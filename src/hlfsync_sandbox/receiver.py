"""A local incoming-webhook receiver for the operators' channel, as Slack and Teams take one.

Accepts `POST` with a JSON object holding a string `text` (200 `ok`, as Slack answers), refuses
anything else with 400 (`invalid_payload` / `no_text`), and can be told to fail the next posts
with a status, to exercise retries. Records what it accepted; runs in a thread on 127.0.0.1.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


class WebhookReceiver:
    """`with WebhookReceiver() as hook: ... hook.url ... hook.texts`."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.posts = 0
        self._fail: list[int] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                status, answer = receiver._take(self.rfile.read(length))
                body = answer.encode()
                self.send_response(status)
                self.send_header("content-type", "text/plain; charset=utf-8")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/services/T000/B000/sandbox"

    def fail_next(self, count: int, status: int = 500) -> None:
        """The next `count` posts answer `status` and are not recorded."""
        with self._lock:
            self._fail.extend([status] * count)

    def _take(self, raw: bytes) -> tuple[int, str]:
        with self._lock:
            self.posts += 1
            if self._fail:
                return self._fail.pop(0), "server_error"
            try:
                doc = json.loads(raw)
            except ValueError:
                return 400, "invalid_payload"
            if not isinstance(doc, dict) or not isinstance(doc.get("text"), str):
                return 400, "no_text"
            self.texts.append(doc["text"])
            return 200, "ok"

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
