"""Every benchmark, one table; the full run rewrites the figures in docs/performance.md.

    PYTHONPATH=. uv run python -m bench            # everything, about 30 minutes on 2 cores
    PYTHONPATH=. uv run python -m bench --quick    # small sizes, a smoke run, writes nothing
    PYTHONPATH=. uv run python -m bench --only sync expiry

Each area is also a module of its own (`python -m bench.sync` ...) with a detailed table. Only
a full run (all areas, full sizes) replaces the generated part of docs/performance.md, between
its `bench:begin` and `bench:end` markers; the analysis around it is written by people.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import _common

DOC = Path(__file__).resolve().parent.parent / "docs" / "performance.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
COMMAND = "PYTHONPATH=. uv run python -m bench"


@dataclass
class Figure:
    area: str
    scenario: str
    result: str
    target: str = ""
    met: bool | None = None

    def cells(self) -> list[str]:
        met = "" if self.met is None else ("yes" if self.met else "NO")
        return [self.area, self.scenario, self.result, self.target, met]


def _pct(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def latency(quick: bool) -> list[Figure]:
    from bench import latency as mod

    figures = []
    # Two runs a situation, taken in turn: one run makes 100-300 changes while a job runs, and
    # its p99 of them is nearly its maximum.
    runs = mod.run(100 if quick else 1000, 0.02, mentors=5000 if quick else 100_000,
                   repeat=1 if quick else 2)  # fmt: skip
    for r in runs:
        figures.append(Figure(
            "event latency",
            f"commit → PATCH received, {r.situation}, {r.changes:,} changes in {r.runs} runs",
            f"p50 {r.p50_ms:.1f} ms, p95 {r.p95_ms:.1f} ms, p99 {r.p99_ms:.1f} ms, max"
            f" {r.max_ms:.1f} ms; while a job ran {r.during_text()} ms;"
            f" the app's write p99 {r.write_p99_ms:.1f}, max {r.write_max_ms:.1f} ms;"
            f" longest loop stall {r.stall_ms:.1f} ms; per run, p99 while a job ran, new WAL"
            f" segments and pushes delivered: {r.per_run_text()}",
            "p50 ≤ 20 ms, p99 ≤ 100 ms, also while a job ran", r.met,
        ))  # fmt: skip
    return figures


def drain(quick: bool) -> list[Figure]:
    from bench import drain as mod

    figures = []
    for row in mod.run(2000 if quick else 10_000, quick):
        result = f"{row.rate:,.0f} ops/s, {row.cpu_s / row.ops * 1000:.2f} ms CPU/op"
        if row.target:
            ratio = row.rate / row.target
            figures.append(Figure("drain, in-process client", row.scenario,
                                  f"{result}; {ratio:.2f} of ideal", "≥ 0.90 of c ÷ latency",
                                  ratio >= 0.9))  # fmt: skip
        else:
            figures.append(Figure("drain, in-process client", row.scenario, result))
    worker, loop, *_ = mod.webhook(500 if quick else 5000)
    cpu_ms = worker.cpu_s / worker.ops * 1000
    ratio = worker.rate / loop.rate
    figures.append(Figure(
        "guarantees' cost, webhook-v1", "hlfsync worker vs a hand-written SKIP LOCKED loop",
        f"worker {cpu_ms:.2f} ms CPU/op, {worker.rate:,.0f} ops/s = {ratio:.2f} of the loop's"
        f" {loop.rate:,.0f} ops/s at {loop.cpu_s / loop.ops * 1000:.2f} ms CPU/op",
        "≤ 1.5 ms CPU/op, ≥ 0.7 of the loop", cpu_ms <= 1.5 and ratio >= 0.7,
    ))  # fmt: skip
    return figures


def sync(quick: bool) -> list[Figure]:
    from bench import sync as mod

    figures = []
    for row in mod.run(quick):
        result = (f"{row.ops:,} in {row.seconds:.1f} s: {row.rate:,.0f} ops/s,"
                  f" worker {row.cpu_s / row.ops * 1000:.2f} ms CPU/op,"
                  f" sandbox {row.sandbox_cpu_s / row.ops * 1000:.2f} ms CPU/op,"
                  f" peak RSS {row.peak_rss_mib:.0f} MiB/worker")  # fmt: skip
        target, met = "", None
        if "latency" in row.scenario:
            ratio = row.rate / 500
            result += f"; {ratio:.2f} of ideal"
            target, met = "≥ 0.90 of 50 ÷ 0.1 s", ratio >= 0.9
        elif "limit" in row.scenario:
            per_s = float(str(row.extra["requests accepted/s ÷ limit"]).split()[0])
            dead = int(row.extra["dead letters"])
            result += f"; {row.extra['requests']}; {per_s:.2f} of the limit; {dead} dead letters"
            if "status changes" in row.scenario:
                target, met = "≥ 0.95 of the limit, 0 dead letters", per_s >= 0.95 and dead == 0
        elif row.scenario.startswith("outage"):
            most = int(row.extra["most calls in one cool-down after"])
            dead = int(row.extra["dead letters"])
            ratio = float(str(row.extra["drain after recovery ÷ normal"]))
            result = (
                f"{row.extra['calls before open']} calls in flight when it opened, then at"
                f" most {most} per cool-down; {dead} dead letters; drained after recovery"
                f" at {row.rate:,.0f} ops/s, {ratio:.2f} of the same drain without an outage"
                f" just before ({row.extra['rate without an outage']} ops/s)"
            )
            target = "≤ 1 call per cool-down, 0 dead letters, full rate after"
            met = most <= 1 and dead == 0 and ratio >= 0.9
        elif row.ops >= 100_000 and "1 worker" in row.scenario:
            target, met = "peak RSS < 150 MB", row.peak_rss_mib * 2**20 < 150e6
        figures.append(Figure("sync over HTTPS", row.scenario, result, target, met))
    return figures


def reconcile(quick: bool) -> list[Figure]:
    from bench import reconcile as mod

    sizes = [2_000, 10_000] if quick else [10_000, 100_000]
    results = mod.run(sizes)
    peaks = [peak for _, _, peak in results]
    figures = []
    for index, (report, seconds, peak) in enumerate(results):
        last = index == len(results) - 1
        flat = max(peaks) <= 1.2 * min(peaks)
        figures.append(Figure(
            "reconcile", f"{report.contacts_read:,} contacts, pages of 5,000, 1 % drifted",
            f"{seconds:.2f} s, {report.diverging:,} diverging, peak {peak / 2**20:.1f} MiB",
            "< 30 s at 100,000; memory flat within 20 %" if last else "",
            (seconds < 30 and flat) if last and not quick else None,
        ))  # fmt: skip
    return figures


def expiry(quick: bool) -> list[Figure]:
    from bench import expiry as mod

    mentors = 10_000 if quick else 100_000
    return [Figure(
        "expiry check", f"{mentors:,} mentors, {row.scenario}, {row.run} run",
        f"{row.seconds:.2f} s; {row.stats['reminders_total']:,} reminders,"
        f" {row.stats['paused']:,} paused; speed probe {row.probe_s:.3f} s",
        f"< {row.target_s:g} s" if row.target_s else "",
        None if row.target_s is None else row.seconds < row.target_s,
    ) for row in mod.run(mentors)]  # fmt: skip


def api(quick: bool) -> list[Figure]:
    from bench import api as mod

    mentors = 10_000 if quick else 100_000
    figures = []
    for row in mod.run(mentors, 200 if quick else 1000):
        p50, p99 = _pct(row.latencies_ms, 50), _pct(row.latencies_ms, 99)
        target = "p99 < 50 ms" if row.scenario.startswith("HTTP") and row.concurrency == 1 else ""
        rate = len(row.latencies_ms) / row.seconds
        figures.append(Figure(
            "API, GET /api/v1/mentors", f"{mentors:,} mentors, {row.scenario}, c={row.concurrency}",
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, {rate:,.0f} pages/s",
            target, (p99 < 50) if target and row.concurrency == 1 else None,
        ))  # fmt: skip
    return figures


def alerts(quick: bool) -> list[Figure]:
    from bench import alerts as mod

    r = mod.run(quick)
    d = mod.push_drain(2_000 if quick else 10_000)
    return [Figure(
        "push outage drill", "push key revoked 30 min (15 quick) while syncs fail, fake clock",
        f"{r.alerts_during_outage} alerts raised, {r.pushes_delivered_after}/{r.pushes_expected}"
        f" pushes delivered after, {r.alerts_lost} lost, {r.duplicate_pushes} duplicates,"
        f" {r.out_of_order_pushes} out of order,"
        f" {r.operator_alert_notices} operator notice, {r.token_requests_during_outage} token"
        " requests during the outage",
        "0 lost, 0 duplicates, 1 notice", r.alerts_lost == 0 and r.duplicate_pushes == 0
        and r.operator_alert_notices == 1,
    ), Figure(
        "push delivery", f"{d.pushes:,} due pushes over 50 devices (a first night's), one"
        " dispatcher, FCM sandbox in its own process",
        f"{d.per_s:,.0f} pushes/s, dispatcher {d.cpu_ms_per_push:.2f} ms CPU/push,"
        f" {d.commits_per_push:.2f} database commits/push", "", None,
    )]  # fmt: skip


def contract(quick: bool) -> list[Figure]:
    from bench import contract as mod

    r = mod.run(500 if quick else 2000, 10.0 if quick else 20.0)
    return [Figure(
        "contract drift", f"listing field renamed for the drift while changes flow,"
        f" {r.mentors:,} mentors, cool-down {mod.COOLDOWN_S:g} s",
        f"{r.changes:,} changes, {r.held_peak:,} held at peak; {r.dead_letters} dead letters;"
        f" {r.contract_alerts} alert + {r.recovered_notices} recovered notice; replayed"
        f" {r.replay_s:.1f} s after the fix; listing = status: {'yes' if r.consistent else 'NO'}",
        "0 dead letters, 1 alert, all replayed",
        r.dead_letters == 0 and r.contract_alerts == 1 and r.consistent,
    )]  # fmt: skip


AREAS: dict[str, Callable[[bool], list[Figure]]] = {
    "latency": latency, "drain": drain, "sync": sync, "reconcile": reconcile,
    "expiry": expiry, "api": api, "alerts": alerts, "contract": contract,
}  # fmt: skip


def markdown(figures: list[Figure], stamp: str, minutes: float, speed: str) -> str:
    lines = [
        BEGIN,
        f"Measured {stamp} on {_common.machine()}, embedded PostgreSQL, the sandbox in its own"
        f" process; `{COMMAND}` ({minutes:.0f} min); {speed}.",
        "",
        "| area | scenario | result | target | met |",
        "|---|---|---|---|---|",
        *("| " + " | ".join(c.replace("|", "\\|") for c in f.cells()) + " |" for f in figures),
        END,
    ]
    return "\n".join(lines)


def write_doc(block: str) -> None:
    text = DOC.read_text()
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + "\n\n## Figures\n\n" + block + "\n"
    DOC.write_text(text)


def main() -> None:
    from hlfsync import observability

    observability.configure("warning", "json")
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes; writes nothing")
    parser.add_argument("--only", nargs="+", choices=sorted(AREAS), help="these areas only")
    args = parser.parse_args()
    started = time.perf_counter()
    before = _common.speed_s()
    figures: list[Figure] = []
    for name in args.only or list(AREAS):
        print(f"[{time.strftime('%H:%M:%S')}] {name}", file=sys.stderr, flush=True)
        figures += AREAS[name](args.quick)
    minutes = (time.perf_counter() - started) / 60
    speed = f"machine speed probe {before:.3f} s before, {_common.speed_s():.3f} s after"
    from rich.console import Console
    from rich.table import Table

    stamp = _common.stamp()
    table = Table("area", "scenario", "result", "target", "met",
                  title=f"hlfsync benchmarks ({_common.machine()}, {stamp}, {speed})")  # fmt: skip
    for figure in figures:
        table.add_row(*figure.cells())
    Console(width=200).print(table)
    if not args.quick and not args.only:
        write_doc(markdown(figures, stamp, minutes, speed))
        print(f"wrote {DOC}", file=sys.stderr)
    missed = [f for f in figures if f.met is False]
    if missed:
        print(f"{len(missed)} figure(s) missed their target", file=sys.stderr)


if __name__ == "__main__":
    main()
