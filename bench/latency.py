"""Event latency: a committed status change until the sandbox receives its PATCH, with the
scheduler ON, in each situation where scheduled bulk work competes with live changes.

    PYTHONPATH=. uv run python -m bench.latency [--changes 1000] [--mentors 100000]
        [--situations start reconcile expiry two-workers quiet] [--repeat N] [--one-sandbox]
        [--timeline F]

`hlfsync worker` processes (default settings, dataverse-v9 over HTTPS) and the sandbox run as in
production: Dynamics and FCM as two sandbox processes, as they are two services elsewhere
(`--one-sandbox` serves both from one process, where a night's pushes queue in the same server
loop as the PATCHes being timed); this process commits status changes one at a time, `--gap-ms`
apart, and reads from the sandbox's request log when each PATCH arrived (both stamped with this
machine's clock). The changed mentors are active with a valid certificate and no drift, so no
scheduled job touches them. Situations, each on a fresh copy of one seeded database
(`--mentors`, certificates spread ±90 days, never checked, all contacts in the sandbox, 1 %
drifted):

- start: a worker starts with every scheduled job due (health check, compensation, the
  first-ever expiry catch-up, a reconciliation of every contact); changes from its start on;
- reconcile: only the reconciliation due (the others recorded as done);
- expiry: only the expiry check due: the first-ever catch-up, ~49 % of the mentors paused at
  once, their `remove`s queued as bulk work;
- two-workers: as `start`, with two worker processes;
- quiet (isolated figure, not the product as deployed): every scheduled slot recorded as done,
  so nothing scheduled runs: the latency of the sync path alone.

Each row: p50/p95/p99/max over the changes, p50/p99/max for the changes committed while a
scheduled job ran (a few hundred of the 1,000 at most: the jobs end before the changes do, so
the row is judged on both), the app's own write (the UPDATE until its commit returns: the
latency's clock starts after it, and a job holding a row the write needs shows here), the
longest event-loop stall the worker's probe saw (`hlfsync_event_loop_lag_max_seconds`), and the
worker's peak RSS. Target: p50 <= 20 ms, p99 <= 100 ms in every situation, over all its changes
and over those made while a job ran.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from bench import _common
from hlfsync.db import connect

TEMPLATE = "bench_latency_template"
JOBS = ("expiry_check", "reconcile", "health_check", "compensation")
SITUATIONS: dict[str, tuple[str, tuple[str, ...], int]] = {
    # name: (label, jobs left due, workers)
    "start": ("worker start, every job due", JOBS, 1),
    "reconcile": ("reconciliation of every contact in progress", ("reconcile",), 1),
    "expiry": ("first-ever expiry catch-up in progress", ("expiry_check",), 1),
    "two-workers": ("two workers starting, every job due", JOBS, 2),
    "quiet": ("isolated: scheduler quiet (nothing due)", (), 1),
}


@dataclass
class Result:
    situation: str
    # Per change, ms: commit -> PATCH received; of those, the changes committed while a
    # scheduled job ran; commit -> call sent (hlfsync) and sent -> received (the way and the
    # sandbox); the app's own write (the status UPDATE until its commit returned), before the
    # latency's clock starts: a scheduled job holding a row it needs makes the person wait here.
    latencies: list[float]
    during: list[float] = field(default_factory=list)
    ours: list[float] = field(default_factory=list)
    theirs: list[float] = field(default_factory=list)
    writes: list[float] = field(default_factory=list)
    stall_ms: float = 0.0
    gcs: dict[str, tuple[int, float]] = field(default_factory=dict)
    peak_rss_mib: float = 0.0
    jobs: dict[str, float] = field(default_factory=dict)
    # (seconds after the first change, latency ms, of which commit -> sent ms) per change, and
    # each job's (start, end) on the same scale: for `--timeline` (the first run's).
    timeline: list[tuple[float, float, float]] = field(default_factory=list)
    spans: dict[str, tuple[float, float]] = field(default_factory=dict)
    runs: int = 1
    # Per run: the p99 of the changes made while a job ran (None: none were), and the WAL
    # segments the server created during it (None: a server before PostgreSQL 18 does not
    # count them). A new segment is zero-filled holding the WAL write lock, and every commit
    # waits meanwhile (docs/performance.md): a run's figure can be read beside it.
    run_during_p99: list[float | None] = field(default_factory=list)
    wal_segments: list[int | None] = field(default_factory=list)
    # Per run: pushes delivered per second while the changes were made. The dispatcher gives way
    # to the live loop (`pacing.LagShare`): what that costs the night's alerts shows here.
    pushes_per_s: list[float] = field(default_factory=list)

    @property
    def changes(self) -> int:
        return len(self.latencies)

    @property
    def p50_ms(self) -> float:
        return _percentile(self.latencies, 50)

    @property
    def p95_ms(self) -> float:
        return _percentile(self.latencies, 95)

    @property
    def p99_ms(self) -> float:
        return _percentile(self.latencies, 99)

    @property
    def max_ms(self) -> float:
        return max(self.latencies)

    @property
    def ours_p99_ms(self) -> float:
        return _percentile(self.ours, 99) if self.ours else float("nan")

    @property
    def theirs_p99_ms(self) -> float:
        return _percentile(self.theirs, 99) if self.theirs else float("nan")

    @property
    def write_p99_ms(self) -> float:
        return _percentile(self.writes, 99) if self.writes else float("nan")

    @property
    def write_max_ms(self) -> float:
        return max(self.writes, default=float("nan"))

    @property
    def met(self) -> bool:
        """The target over every change, and over those committed while a scheduled job ran:
        most of the 1,000 come after the jobs end, and alone they would judge a quiet worker."""
        during_met = not self.during or (
            _percentile(self.during, 50) <= 20 and _percentile(self.during, 99) <= 100
        )
        return self.p50_ms <= 20 and self.p99_ms <= 100 and during_met

    def per_run_text(self) -> str:
        """Per run: p99 while a job ran, the WAL segments created (`-`: not known), and the
        pushes delivered per second meanwhile."""
        return "; ".join(
            f"{'-' if p is None else f'{p:.1f}'} ms, {'-' if n is None else n} new WAL segments,"
            f" {rate:,.0f} pushes/s"
            for p, n, rate in zip(
                self.run_during_p99, self.wal_segments, self.pushes_per_s, strict=True
            )
        )

    def during_text(self) -> str:
        if not self.during:
            return "-"
        return (f"{len(self.during)}: p50 {_percentile(self.during, 50):.1f}, "
                f"p99 {_percentile(self.during, 99):.1f}, max {max(self.during):.1f}")  # fmt: skip


def merge(results: list[Result]) -> Result:
    """Several runs of one situation as one row: every change of every run counts."""
    first = results[0]
    jobs: dict[str, float] = {}
    for r in results:
        for job, seconds in r.jobs.items():
            jobs[job] = max(jobs.get(job, 0.0), seconds)
    return Result(
        situation=first.situation,
        latencies=[ms for r in results for ms in r.latencies],
        during=[ms for r in results for ms in r.during],
        ours=[ms for r in results for ms in r.ours],
        theirs=[ms for r in results for ms in r.theirs],
        writes=[ms for r in results for ms in r.writes],
        stall_ms=max(r.stall_ms for r in results),
        gcs=_merge_gcs([r.gcs for r in results]),
        peak_rss_mib=max(r.peak_rss_mib for r in results),
        jobs=jobs,
        timeline=first.timeline,
        spans=first.spans,
        runs=sum(r.runs for r in results),
        run_during_p99=[p for r in results for p in r.run_during_p99],
        wal_segments=[n for r in results for n in r.wal_segments],
        pushes_per_s=[rate for r in results for rate in r.pushes_per_s],
    )


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def _progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _vm_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _metrics_text(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            return str(answer.read().decode())
    except OSError:
        return ""


def _gc_pauses(port: int) -> dict[str, tuple[int, float]]:
    """Per generation: how many garbage collections the worker made, and the histogram bucket
    bound of its longest (ms)."""
    counts: dict[tuple[str, float], float] = {}
    for line in _metrics_text(port).splitlines():
        if line.startswith("hlfsync_gc_pause_seconds_bucket{"):
            labels, value = line.split("} ")
            fields = dict(part.split("=") for part in labels.split("{", 1)[1].split(","))
            le = float(fields["le"].strip('"'))
            counts[(fields["generation"].strip('"'), le)] = float(value)
    found: dict[str, tuple[int, float]] = {}
    for generation in sorted({g for g, _ in counts}):
        bounds = sorted(le for g, le in counts if g == generation)
        below, longest = 0.0, 0.0
        for le in bounds:
            if counts[(generation, le)] > below:
                longest = le
            below = counts[(generation, le)]
        found[generation] = (int(below), longest * 1000)
    return found


def _merge_gcs(found: list[dict[str, tuple[int, float]]]) -> dict[str, tuple[int, float]]:
    merged: dict[str, tuple[int, float]] = {}
    for one in found:
        for generation, (n, longest) in one.items():
            had_n, had_longest = merged.get(generation, (0, 0.0))
            merged[generation] = (had_n + n, max(had_longest, longest))
    return merged


def _gcs_text(gcs: dict[str, tuple[int, float]]) -> str:
    return ", ".join(f"gen{g} {n} (<= {ms:g})" for g, (n, ms) in sorted(gcs.items())) or "-"


def _scrape_max_lag_s(port: int) -> float:
    """The worker's longest loop stall; NaN from a worker without the probe (an older one)."""
    for line in _metrics_text(port).splitlines():
        if line.startswith("hlfsync_event_loop_lag_max_seconds "):
            return float(line.split()[1])
    return float("nan")


@contextlib.contextmanager
def _workers(url: str, env: dict[str, str], count: int) -> Iterator[list[tuple[Any, int]]]:
    folder = Path(tempfile.mkdtemp(prefix="hlfsync-bench-latency-"))
    base = {k: v for k, v in os.environ.items() if not k.startswith("HLFSYNC_")}
    # Logging as deployed: the default level (info: a line per push delivered, among others),
    # JSON into the log file a supervisor would keep.
    base |= env | {"HLFSYNC_DATABASE_URL": url, "HLFSYNC_DATA_DIR": str(folder)}
    procs = []
    for i in range(count):
        port = _free_port()
        worker_env = base | {"HLFSYNC_WORKER_METRICS_PORT": str(port)}
        with (folder / f"worker-{i}.log").open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "hlfsync", "worker"], env=worker_env,
                                    stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
        procs.append((proc, port))
    try:
        yield procs
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _ in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()


def _wait_listening(url: str, count: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND query = 'LISTEN hlfsync_alerts'"
            ).fetchone()
            if row and row[0] >= count:
                return
            time.sleep(0.01)
    raise RuntimeError("workers did not start listening")


def _prepare_template(mentors: int) -> tuple[str, list[dict[str, object]], list[tuple[Any, Any]]]:
    """A seeded database to copy, the sandbox's contacts (1 % drifted), the mentors to change."""
    url = _common.fresh_database(TEMPLATE, mentors=mentors)
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT m.id, m.dynamics_contact_id, c.expires_on > current_date + 1"
            "  FROM peer_mentors m JOIN certifications c ON c.mentor_id = m.id ORDER BY m.id"
        ).fetchall()
    contacts: list[dict[str, object]] = []
    changeable = []
    for i, (mentor, contact, valid) in enumerate(rows):
        drifted = i % 100 == 0
        contacts.append({"contactid": str(contact), "listed": not drifted})
        if valid and not drifted:
            changeable.append((mentor, contact))
    return url, contacts, changeable


def _clone(template: str, name: str, due: tuple[str, ...]) -> str:
    admin = _common.server_url()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
    url = connect.with_database(admin, name)
    done = [job for job in JOBS if job not in due]
    if done:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO scheduled_runs (job, slot, status, finished_at)"
                " SELECT job, '2999-01-01', 'succeeded', now() FROM unnest(%s::text[]) AS job",
                [done],
            )
    return url


def _job_spans(url: str) -> dict[str, tuple[float, float]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT job, started_at, coalesce(finished_at, now()) FROM scheduled_runs"
            " WHERE slot < '2999-01-01'"
        ).fetchall()
    return {job: (a.timestamp(), b.timestamp()) for job, a, b in rows}


def _pushes_between(url: str, start: float, end: float) -> int:
    """Pushes the dispatchers delivered between two Unix times (their clock is this one's)."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM alert_deliveries WHERE status = 'delivered'"
            "   AND finished_at BETWEEN to_timestamp(%s) AND to_timestamp(%s)",
            [start, end],
        ).fetchone()
    return int(row[0]) if row else 0


def _sent_at(url: str, mentors: list[Any]) -> dict[str, float]:
    """When the worker sent each mentor's first successful call (its answer's time minus the
    call's duration, both from the audit row), per contact key."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT DISTINCT ON (a.mentor_id) p.dynamics_contact_id, a.occurred_at,"
            "       (a.details ->> 'duration_ms')::float8"
            "  FROM audit_log a JOIN peer_mentors p ON p.id = a.mentor_id"
            " WHERE a.event_type = 'sync_succeeded' AND a.mentor_id = ANY(%s)"
            " ORDER BY a.mentor_id, a.id",
            [mentors],
        ).fetchall()
    return {f"contacts({c})": at.timestamp() - ms / 1000 for c, at, ms in rows}


def _arrivals(admin: Any, keys: set[str], since: float, timeout_s: float) -> dict[str, float]:
    """First arrival of a PATCH per contact key, waiting until all `keys` have arrived."""
    first: dict[str, float] = {}
    deadline = time.monotonic() + timeout_s
    cursor = since
    while True:
        for request in admin.requests(since=cursor - 5, kind="dataverse", method="PATCH"):
            key = request["path"].rsplit("/", 1)[-1]
            if key in keys and (key not in first or request["at"] < first[key]):
                first[key] = request["at"]
        cursor = time.time()
        if len(first) >= len(keys) or time.monotonic() > deadline:
            return first
        time.sleep(0.5)


def run_situation(
    name: str,
    template: str,
    *,
    contacts: list[dict[str, object]],
    changeable: list[tuple[Any, Any]],
    changes: int,
    gap_s: float,
    split_push: bool = True,
) -> Result:
    label, due, count = SITUATIONS[name]
    url = _clone(template, f"bench_latency_{name.replace('-', '_')}", due)
    chosen = changeable[: changes + 1]
    sandboxes = _common.sandboxes_apart() if split_push else _common.sandbox_process()
    segments_before = _common.wal_segments_created()
    with sandboxes as (env, admin):
        admin.delete_contacts()
        admin.put_contacts(contacts)
        with _workers(url, env, count) as procs, psycopg.connect(url, autocommit=True) as conn:
            _wait_listening(url, count)
            started = time.time()
            # Warm-up: the first call fetches the worker's token (not counted).
            warm_mentor, warm_contact = chosen[0]
            conn.execute("UPDATE peer_mentors SET status = 'paused' WHERE id = %s", [warm_mentor])
            _arrivals(admin, {f"contacts({warm_contact})"}, started, timeout_s=120)
            committed: dict[str, float] = {}
            writes: list[float] = []
            for mentor, contact in chosen[1:]:
                asked = time.time()
                conn.execute("UPDATE peer_mentors SET status = 'paused' WHERE id = %s", [mentor])
                committed[f"contacts({contact})"] = time.time()
                writes.append((committed[f"contacts({contact})"] - asked) * 1000)
                time.sleep(gap_s)
            first = _arrivals(admin, set(committed), started, timeout_s=300)
            stall_s = max(_scrape_max_lag_s(port) for _, port in procs)
            gcs = [_gc_pauses(port) for _, port in procs]
            peak_kib = max(_vm_hwm_kib(proc.pid) for proc, _ in procs)
            spans = _job_spans(url)
            sent = _sent_at(url, [m for m, _ in chosen[1:]])
            pushed = _pushes_between(url, started, max(committed.values()))
    segments_after = _common.wal_segments_created()
    segments = (
        None if segments_before is None or segments_after is None
        else segments_after - segments_before
    )  # fmt: skip
    # The first change also fetches the worker's first token: it is part of a start.
    latencies = {k: (first[k] - at) * 1000 for k, at in committed.items() if k in first}
    # Where the time went: in hlfsync (commit until the call left) and after (the call's way to
    # the sandbox and its wait there until handled).
    ours = [(sent[k] - committed[k]) * 1000 for k in latencies if k in sent]
    theirs = [(first[k] - sent[k]) * 1000 for k in latencies if k in sent]
    during = [
        ms for k, ms in latencies.items()
        if any(a <= committed[k] <= b for a, b in spans.values())
    ]  # fmt: skip
    values = list(latencies.values())
    missing = len(committed) - len(values)
    if missing:
        _progress(f"{name}: {missing} changes never arrived")
    return Result(
        situation=label,
        latencies=values,
        during=during,
        ours=ours,
        theirs=theirs,
        writes=writes,
        stall_ms=stall_s * 1000,
        gcs=_merge_gcs(gcs),
        peak_rss_mib=peak_kib / 1024,
        jobs={job: b - a for job, (a, b) in spans.items()},
        timeline=sorted(
            (committed[k] - started, ms, (sent[k] - committed[k]) * 1000 if k in sent else -1.0)
            for k, ms in latencies.items()
        ),
        spans={job: (a - started, b - started) for job, (a, b) in spans.items()},
        run_during_p99=[_percentile(during, 99) if during else None],
        wal_segments=[segments],
        pushes_per_s=[pushed / max(1e-9, max(committed.values()) - started)],
    )


def run(
    changes: int,
    gap_s: float,
    *,
    mentors: int = 100_000,
    situations: list[str] | None = None,
    split_push: bool = True,
    repeat: int = 1,
) -> list[Result]:
    """One result per situation (default: all), each over `repeat` runs on fresh copies, the
    situations taken in turn (a machine slowing down meets each of them alike)."""
    _progress(f"seeding {mentors:,} mentors")
    template, contacts, changeable = _prepare_template(max(mentors, changes + 1))
    names = situations or list(SITUATIONS)
    runs: dict[str, list[Result]] = {name: [] for name in names}
    for round_ in range(1, repeat + 1):
        for name in names:
            _progress(f"situation: {name}" + (f", run {round_} of {repeat}" if repeat > 1 else ""))
            result = run_situation(name, template, contacts=contacts, changeable=changeable,
                                   changes=changes, gap_s=gap_s, split_push=split_push)  # fmt: skip
            _progress(f"{name}: {_summary(result)}")
            runs[name].append(result)
    return [merge(runs[name]) for name in names]


def _summary(result: Result) -> str:
    jobs = ", ".join(f"{j} {s:.1f} s" for j, s in result.jobs.items())
    return (f"p50 {result.p50_ms:.1f} ms, p95 {result.p95_ms:.1f} ms, "
            f"p99 {result.p99_ms:.1f} ms, max {result.max_ms:.1f} ms, "
            f"during jobs {result.during_text()}, stall {result.stall_ms:.1f} ms, "
            f"p99 commit->sent {result.ours_p99_ms:.1f} ms, sent->received "
            f"{result.theirs_p99_ms:.1f} ms, WAL segments created "
            f"{', '.join('-' if n is None else str(n) for n in result.wal_segments)}, "
            f"pushes delivered {', '.join(f'{r:,.0f}/s' for r in result.pushes_per_s)}, "
            f"the app's write p99 "
            f"{result.write_p99_ms:.1f} ms, max {result.write_max_ms:.1f} ms, "
            f"collections (ms) {_gcs_text(result.gcs)}, "
            f"peak RSS {result.peak_rss_mib:.0f} MiB, jobs {jobs}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--gap-ms", type=float, default=20.0)
    parser.add_argument("--mentors", type=int, default=100_000)
    parser.add_argument("--situations", nargs="+", choices=list(SITUATIONS))
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs per situation, on fresh copies, merged into one row (more changes made "
        "while a job ran: one run sees a few hundred)",
    )
    parser.add_argument(
        "--one-sandbox",
        action="store_true",
        help="serve FCM from the Dynamics sandbox's process (not as deployed)",
    )
    parser.add_argument(
        "--timeline",
        type=Path,
        metavar="FILE",
        help="also write each change's latency and each job's span (JSON)",
    )
    args = parser.parse_args()
    results = run(args.changes, args.gap_ms / 1000, mentors=args.mentors,
                  situations=args.situations, split_push=not args.one_sandbox,
                  repeat=args.repeat)  # fmt: skip
    if args.timeline:
        args.timeline.write_text(
            json.dumps({r.situation: {"changes": r.timeline, "jobs": r.spans} for r in results})
        )
    from rich.console import Console
    from rich.table import Table

    title = (f"event latency, {args.mentors:,} mentors, scheduler on "
             f"({_common.machine()}, {_common.stamp()})")  # fmt: skip
    table = Table("situation", "changes", "p50 ms", "p95 ms", "p99 ms", "max ms",
                  "p99 ms: commit → sent, sent → received",
                  "the app's write (UPDATE + commit) ms: p99, max",
                  "while a job ran (n: ms)",
                  "per run: p99 while a job ran, new WAL segments, pushes delivered",
                  "longest loop stall ms", "collections (longest ≤ ms)",
                  "peak RSS MiB",
                  "scheduled jobs (s)", "met", title=title)  # fmt: skip
    for r in results:
        counted = f"{r.changes:,} ({r.runs} runs)" if r.runs > 1 else str(r.changes)
        table.add_row(r.situation, counted, f"{r.p50_ms:.1f}", f"{r.p95_ms:.1f}",
                      f"{r.p99_ms:.1f}", f"{r.max_ms:.1f}",
                      f"{r.ours_p99_ms:.1f}, {r.theirs_p99_ms:.1f}",
                      f"{r.write_p99_ms:.1f}, {r.write_max_ms:.1f}", r.during_text(),
                      r.per_run_text(),
                      f"{r.stall_ms:.1f}",
                      _gcs_text(r.gcs),
                      f"{r.peak_rss_mib:.0f}",
                      ", ".join(f"{j} {s:.1f}" for j, s in sorted(r.jobs.items())),
                      "yes" if r.met else "NO")  # fmt: skip
    Console(width=220).print(table)


if __name__ == "__main__":
    main()
