"""The Prometheus metrics hlfsync exposes, defined once here on the default registry.

Modules import this one and update its metrics; `/metrics` serves the default registry (the
API's route, or `serve` for a worker without the API).
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, Metric, start_http_server
from prometheus_client.registry import Collector

from hlfsync.core.errors import ConfigError

# Exposed as hlfsync_renewal_history_size_guard_total (prometheus-client adds `_total`).
RENEWAL_HISTORY_SIZE_GUARD = Counter(
    "hlfsync_renewal_history_size_guard",
    "Renewal histories seen longer than the size guard allows (core.renewals.SIZE_GUARD).",
    ["source"],
)

# The worker's event loop (`worker.lag.LagProbe`): how late it wakes a sleeper. Live changes wait
# as long as the loop is held, so this is the floor under their latency.
LOOP_LAG = Histogram(
    "hlfsync_event_loop_lag_seconds",
    "How much later than asked the worker's event loop woke the lag probe.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
LOOP_LAG_MAX = Gauge(
    "hlfsync_event_loop_lag_max_seconds",
    "The longest event-loop delay the worker's probe has seen since the process started.",
)
GC_PAUSE = Histogram(
    "hlfsync_gc_pause_seconds",
    "Python garbage collections in the worker process, by generation: each holds every thread.",
    ["generation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
)


class DatabaseFamilies(Collector):
    """Metric families read from PostgreSQL when /metrics is scraped (`hlfsync.api.metrics`).

    Workers and the API may be separate processes: what every worker did is in the database, so
    the API reads it there and every API process reports the whole system. The API replaces
    `families` at each (cached) read; this collector only hands them to the registry.
    """

    def __init__(self) -> None:
        self.families: list[Metric] = []

    def collect(self) -> Iterable[Metric]:
        return list(self.families)


FROM_DATABASE = DatabaseFamilies()
REGISTRY.register(FROM_DATABASE)


def serve(host: str, port: int) -> None:
    """Serve /metrics on a thread of its own (HLFSYNC_WORKER_METRICS_*); one line if it cannot."""
    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        raise ConfigError(
            f"HLFSYNC_WORKER_METRICS_PORT: cannot listen on {host}:{port} ({exc.strerror or exc})"
        ) from exc
