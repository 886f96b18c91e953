"""The trust of every outbound HTTPS client: a configured CA bundle, or the default trust store.

`tls_verify` is what httpx takes (Dataverse, the webhook, FCM), and fails at start, in one line,
on a CA bundle that cannot be loaded; `requests_session` makes the requests-based libraries (msal,
google-auth) really use it.
"""

from __future__ import annotations

import functools
import ssl
from pathlib import Path
from typing import Any

from hlfsync.core.errors import ConfigError
from hlfsync.settings import PREFIX


def tls_verify(ca_bundle: Path | None) -> ssl.SSLContext | bool:
    """An SSL context trusting only `ca_bundle`, or True for the default trust store."""
    if ca_bundle is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(ca_bundle))
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigError(
            f"invalid setting {PREFIX}DYNAMICS_CA_BUNDLE: cannot load {ca_bundle} ({reason})"
        ) from None


def requests_session(verify: str | bool, timeout_s: float | None) -> Any:
    """A requests.Session that really uses `verify` and `timeout_s` on every request.

    requests lets `REQUESTS_CA_BUNDLE` / `CURL_CA_BUNDLE` override `Session.verify` (only a
    per-request `verify` wins), so a configured CA bundle would be silently ignored on hosts that
    set those variables. No adapter retries either: retries are the engine's.
    """
    import requests

    session = requests.Session()
    options: dict[str, Any] = {"timeout": timeout_s}
    if verify is not True:
        options["verify"] = verify
    session.request = functools.partial(session.request, **options)  # type: ignore[method-assign]
    return session
