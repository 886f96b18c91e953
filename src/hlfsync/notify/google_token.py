"""What an answer from Google's OAuth 2.0 token endpoint means: pure, no I/O, no clock.

google-auth decides retryability from a short status list (500, 503, 504, 408, 429) and keeps an
HTML page as the error text, so a 502 from a proxy reads as refused credentials. This table is
ours instead, drawn from Google's OAuth 2.0 and RFC 6749 error docs:

| token endpoint answer                                    | class                         |
|----------------------------------------------------------|-------------------------------|
| 5xx, 408, 429, or any body that is not a JSON object     | Transient: retry with backoff |
| (an HTML error page from a load balancer or proxy)       |                               |
| JSON `error` temporarily_unavailable / server_error /    | Transient                     |
| internal_failure (any status)                            |                               |
| JSON `error` invalid_grant / invalid_client /            | AuthFailure: hold deliveries, |
| unauthorized_client / access_denied / invalid_scope /    | alert the operators           |
| any other 4xx                                            |                               |

Reasons are one line, at most `REASON_LIMIT` characters, and never quote a non-JSON body.
"""

from __future__ import annotations

import json

from hlfsync.core.errors import AuthFailure, SyncFailure, Transient

REASON_LIMIT = 160
RETRYABLE_ERRORS = frozenset({"temporarily_unavailable", "server_error", "internal_failure"})


def one_line(text: str, limit: int = REASON_LIMIT) -> str:
    """Whitespace folded, cut to `limit` characters and marked when cut."""
    folded = " ".join(text.split())
    return folded if len(folded) <= limit else folded[: limit - 1] + "…"


def oauth_error(body: bytes) -> tuple[str, str] | None:
    """`(error, error_description)` of a JSON OAuth error body; None for anything else."""
    try:
        doc = json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("error"), str):
        return None
    description = doc.get("error_description")
    return doc["error"], description if isinstance(description, str) else ""


def classify(status: int, body: bytes) -> SyncFailure:
    """The failure one non-200 token endpoint answer stands for (the table above)."""
    parsed = oauth_error(body)
    if parsed is None:
        # A page, not an OAuth answer: something between us and Google broke. Never quote it.
        return Transient(f"FCM token endpoint answered HTTP {status} without an OAuth error")
    error, description = parsed
    label = one_line(error, 40)
    reason = one_line(f"{label}: {description}" if description else label)
    if status >= 500 or status in (408, 429) or error in RETRYABLE_ERRORS:
        return Transient(f"FCM token endpoint unavailable (HTTP {status}): {reason}")
    return AuthFailure(f"FCM token request refused: {reason} (HTTP {status})")
