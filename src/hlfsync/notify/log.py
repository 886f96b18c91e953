"""`LogNotifier`: the notifier when FCM is not configured. Logs the alert, delivers nothing.

Logs the alert's kind and subject and a fingerprint of the device token, never the token itself.
"""

from __future__ import annotations

import hashlib

import structlog

from hlfsync.notify.base import DeliveryResult

log = structlog.get_logger(__name__)


def fingerprint(device_token: str) -> str:
    """A short, stable, non-reversible name for a device token, for logs."""
    return hashlib.sha256(device_token.encode()).hexdigest()[:12]


class LogNotifier:
    """Stores nothing itself (the alert is already a row); logs and answers "stored only"."""

    async def send(
        self, token: str, data: dict[str, str], *, collapse_key: str | None = None
    ) -> DeliveryResult:
        log.info(
            "notify.stored_only",
            kind=data.get("type"),
            mentor_id=data.get("mentor_id"),
            device=fingerprint(token),
        )
        return DeliveryResult.stored()
