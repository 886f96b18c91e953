"""The push payloads, built by pure functions: minimal, all strings, no names, PII or secrets.

The app fetches the details from the API after a push; a payload only says what to fetch.
"""

from __future__ import annotations

from uuid import UUID

SYNC_FAILURE = "hlf_sync_failure"
CERT_EXPIRY_REMINDER = "hlf_cert_expiry_reminder"
SYNC_AUTH_FAILURE = "hlf_sync_auth_failure"
PUSH_AUTH_FAILURE = "hlf_push_auth_failure"
PUSH_CHECK = "fcm"  # the credential check (and `contract`) name of the push credentials
OPERATIONS = frozenset({"remove", "restore"})


def _uuid(value: UUID | str) -> str:
    return str(value if isinstance(value, UUID) else UUID(str(value)))


def build_alert_data(mentor_id: UUID | str, operation: str) -> dict[str, str]:
    """A sync for one mentor failed for good: `{type, mentor_id, operation}`, nothing more."""
    if operation not in OPERATIONS:
        raise ValueError(f"operation must be one of {sorted(OPERATIONS)}, got {operation!r}")
    return {"type": SYNC_FAILURE, "mentor_id": _uuid(mentor_id), "operation": operation}


def build_reminder_data(mentor_id: UUID | str, threshold_days: int) -> dict[str, str]:
    """A mentor's certification expires in `threshold_days` days (the reminder's threshold)."""
    if threshold_days < 0:
        raise ValueError("threshold_days must not be negative")
    return {
        "type": CERT_EXPIRY_REMINDER,
        "mentor_id": _uuid(mentor_id),
        "threshold_days": str(threshold_days),
    }


def build_auth_alert_data(contract: str) -> dict[str, str]:
    """For administrators: the Dynamics credentials stopped working for `contract` (or, for
    `fcm`, the push credentials: pushes are held until they work again)."""
    if contract == PUSH_CHECK:
        return {"type": PUSH_AUTH_FAILURE}
    return {"type": SYNC_AUTH_FAILURE, "contract": contract}
