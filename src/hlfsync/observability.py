"""Structured logs (structlog): for a person on a terminal, JSON lines for machines elsewhere.

Secrets never reach a log: settings hold them as SecretStr, and `_drop_secrets` strips any event
key that names one, as a last line of defence.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_KEYS = ("secret", "password", "token", "authorization", "credential", "assertion")


@functools.lru_cache(maxsize=1024)
def _names_a_secret(key: str) -> bool:
    # Cached: the keys are the code's own few dozen names, and this runs on every line (one a
    # push at night); the scan of each key for each word was 4 % of the background thread.
    lowered = key.lower()
    return key != "event" and any(word in lowered for word in _SECRET_KEYS)


def _drop_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if _names_a_secret(key):
            event[key] = "[redacted]"
    return event


def configure(
    level: str = "info", fmt: str = "auto", stream: Any = None, *, logger_factory: Any = None
) -> None:
    """Configure structlog once per process; logs go to stderr so stdout stays for data.

    `fmt` "auto" renders for a person when the stream is a terminal and JSON otherwise, so a
    service under systemd or Kubernetes logs JSON and a developer reads coloured lines.
    `logger_factory` replaces the stream (the demo sends events to its live view).
    """
    target = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if _is_terminal(target) else "json"
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=logger_factory is None and _is_terminal(target))
    )
    timestamper = (
        structlog.processors.TimeStamper(fmt="iso", utc=True)
        if fmt == "json"
        else structlog.processors.TimeStamper(fmt="%H:%M:%S", utc=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            timestamper,
            _drop_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=logger_factory or structlog.PrintLoggerFactory(target),
        cache_logger_on_first_use=True,
    )


def _is_terminal(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False
