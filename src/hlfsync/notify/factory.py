"""Builds the configured `Notifier`: FCM when `HLFSYNC_FCM_*` is set, else the log-only one.

Owns the checks that stop a bad push configuration at start with one line naming the variable.
Makes no network call: the first token is fetched on the first send.
"""

from __future__ import annotations

import httpx

from hlfsync.core.errors import ConfigError
from hlfsync.notify.base import Notifier
from hlfsync.notify.fcm import FcmNotifier
from hlfsync.notify.log import LogNotifier
from hlfsync.outbound.tls import tls_verify
from hlfsync.outbound.transport import PooledTransport
from hlfsync.settings import PREFIX, Settings

FCM_TIMEOUT_S = 10.0
# The dispatcher sends a claim's devices in parallel (at most its batch of 50).
FCM_CONNECTIONS = 50
KEEPALIVE_EXPIRY_S = 30.0


def build_notifier(settings: Settings) -> Notifier:
    """FcmNotifier when FCM is configured, else LogNotifier (alerts are stored and logged only).

    The FCM client trusts `HLFSYNC_DYNAMICS_CA_BUNDLE` when it is set: the sandbox serves FCM and
    Dataverse under one CA. In production that setting is normally unset.
    """
    project_id, credentials = settings.fcm_project_id, settings.fcm_credentials
    if not project_id or credentials is None:
        return LogNotifier()
    if not credentials.is_file():
        raise ConfigError(f"invalid setting {PREFIX}FCM_CREDENTIALS: no such file {credentials}")
    # The pooled transport, as for Dynamics: httpx's own spent milliseconds of CPU per push,
    # and a night's reminders are tens of thousands of pushes on the worker's loop.
    http = httpx.AsyncClient(
        timeout=httpx.Timeout(FCM_TIMEOUT_S),
        transport=PooledTransport(
            connections=FCM_CONNECTIONS,
            verify=tls_verify(settings.dynamics_ca_bundle),
            keepalive_expiry_s=KEEPALIVE_EXPIRY_S,
        ),
        follow_redirects=False,
    )
    return FcmNotifier(
        http,
        project_id,
        credentials,
        settings.fcm_endpoint,
        settings.dynamics_ca_bundle,
        token_uri=settings.fcm_token_uri,
    )
