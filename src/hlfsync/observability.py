"""Structured logs (structlog, JSON by default) and the Prometheus metrics every process shares.

Secrets never reach a log: settings hold them as SecretStr, and `_drop_secrets` strips any event
key that names one, as a last line of defence.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_KEYS = ("secret", "password", "token", "authorization", "credential", "assertion")


def _drop_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        lowered = key.lower()
        if any(word in lowered for word in _SECRET_KEYS) and key != "event":
            event[key] = "[redacted]"
    return event


def configure(level: str = "info", fmt: str = "json", stream: Any = None) -> None:
    """Configure structlog once per process; logs go to stderr so stdout stays for data."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _drop_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=True,
    )
