"""The overview's 24-hour chart as inline SVG: calls per hour by outcome, and the sync lag.

Pure: hours in, markup out. Server-side, so the page stays script-free and needs nothing from a
CDN; colours come from presentation attributes and CSS classes, which the page's
Content-Security-Policy (no inline styles) allows. Every value placed in the markup is a number
or a fixed word, so there is nothing to escape.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup

from hlfsync.api import models

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 44, 52, 12, 28
# Stacked bottom to top, in this order; the CSS gives each its colour.
SERIES = (
    ("succeeded", "succeeded"),
    ("retried", "retried"),
    ("throttled", "throttled"),
    ("dead_lettered", "dead-lettered"),
)


def _nice(top: float) -> float:
    """The axis maximum: `top` rounded up to 1, 2 or 5 times a power of ten."""
    if top <= 0:
        return 1.0
    scale = 1.0
    while scale * 10 <= top:
        scale *= 10
    for step in (1, 2, 5, 10):
        if step * scale >= top:
            return step * scale
    return 10 * scale  # pragma: no cover - the loop always returns


def _lag_label(seconds: float) -> str:
    if seconds >= 120:
        return f"{seconds / 60:.0f} min"
    if seconds >= 1:
        return f"{seconds:.0f} s"
    return f"{seconds * 1000:.0f} ms"


def render(hours: Sequence[models.HourlyActivity]) -> Markup:
    """The chart for these hours (oldest first), with a text summary for screen readers."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    totals = [sum(getattr(h, key) for key, _ in SERIES) for h in hours]
    lags = [h.lag_p50_s for h in hours]
    y_max = _nice(max(totals, default=0))
    lag_max = _nice(max((v for v in lags if v is not None), default=0.0))
    slot = plot_w / max(len(hours), 1)
    bar = max(slot * 0.7, 1.0)
    calls, failed = sum(totals), sum(h.dead_lettered for h in hours)
    summary = (
        f"Last {len(hours)} hours: {calls} calls to Dynamics, {failed} dead-lettered; "
        f"median sync lag up to {_lag_label(max((v for v in lags if v), default=0.0))}."
    )
    out = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{summary}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{summary}</title>",
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" '
        f'y2="{TOP + plot_h}"/>',
        f'<text class="tick" x="{LEFT - 6}" y="{TOP + 4}" text-anchor="end">{y_max:.0f}</text>',
        f'<text class="tick" x="{LEFT - 6}" y="{TOP + plot_h}" text-anchor="end">0</text>',
    ]
    if any(v is not None for v in lags):
        out.append(
            f'<text class="tick lag" x="{LEFT + plot_w + 6}" y="{TOP + 4}">'
            f"{_lag_label(lag_max)}</text>"
        )
    for i, h in enumerate(hours):
        x = LEFT + i * slot + (slot - bar) / 2
        base = TOP + plot_h
        for key, css in SERIES:
            value = getattr(h, key)
            if not value:
                continue
            height = value / y_max * plot_h
            base -= height
            out.append(
                f'<rect class="bar {css}" x="{x:.1f}" y="{base:.1f}" width="{bar:.1f}" '
                f'height="{height:.1f}"><title>{h.hour:%H}:00 UTC: {value} {css}</title></rect>'
            )
        if i % 6 == 0 or i == len(hours) - 1:
            out.append(
                f'<text class="tick" x="{LEFT + (i + 0.5) * slot:.1f}" y="{HEIGHT - 8}" '
                f'text-anchor="middle">{h.hour:%H}:00</text>'
            )
    points = [
        f"{LEFT + (i + 0.5) * slot:.1f},{TOP + plot_h - (v / lag_max) * plot_h:.1f}"
        for i, v in enumerate(lags)
        if v is not None
    ]
    if points:
        out.append(f'<polyline class="lag-line" fill="none" points="{" ".join(points)}"/>')
        out.extend(
            f'<circle class="lag-dot" cx="{p.split(",")[0]}" cy="{p.split(",")[1]}" r="2.5"/>'
            for p in points
        )
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704 - numbers and fixed words only (module docstring)
