"""Sparklines as inline SVG: small, drawn on the server, no chart library and no script.

Each is a polyline scaled to its own maximum, with a `<title>` (read by screen readers
and shown on hover) giving the latest value and the peak, since the line alone has no
axis.
"""

from __future__ import annotations

import time

from homeport.router.views import TaskView
from markupsafe import Markup, escape

WIDTH, HEIGHT = 120, 24


def sparkline(values: list[float], label: str, unit: str = "") -> Markup:
    if not values:
        return Markup('<span class="muted">no samples yet</span>')
    peak = max(values)
    scale = (HEIGHT - 2) / peak if peak > 0 else 0.0
    step = WIDTH / max(len(values) - 1, 1)
    points = " ".join(f"{i * step:.1f},{HEIGHT - 1 - v * scale:.1f}" for i, v in enumerate(values))
    title = f"{label}: now {values[-1]:.3g}{unit}, peak {peak:.3g}{unit}"
    return Markup(
        f'<svg class="spark" role="img" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>"
        f'<polyline fill="none" stroke="currentColor" stroke-width="1.5" points="{points}"/>'
        "</svg>"
    )


def timeline(task: TaskView) -> Markup:
    """The attempts of a task as bars on one time axis: where each ran, how long, and
    how it ended (colour is a class, and each bar's title says it in words)."""
    spans = [
        (a, a.started_at, a.finished_at or a.started_at) for a in task.attempts if a.started_at
    ]
    if not spans:
        return Markup("")
    t0 = min(s for _, s, _ in spans)
    t1 = max(f for _, _, f in spans)
    total = max((t1 - t0).total_seconds(), 1e-3)
    width, row = 600, 18
    bars = []
    for i, (a, start, finish) in enumerate(spans):
        x = (start - t0).total_seconds() / total * (width - 4)
        w = max((finish - start).total_seconds() / total * (width - 4), 3)
        title = f"attempt {a.number} on {a.worker}: {a.outcome}" + (
            f" ({a.error})" if a.error else ""
        )
        bars.append(
            f'<rect class="bar {escape(a.outcome.lower())}" x="{x:.1f}" y="{i * row + 2}" '
            f'width="{w:.1f}" height="{row - 6}"><title>{escape(title)}</title></rect>'
        )
    height = len(spans) * row + 4
    label = f"{len(spans)} attempts over {total:.3f} s"
    return Markup(
        f'<svg class="timeline" role="img" aria-label="{escape(label)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}"><title>{escape(label)}</title>'
        + "".join(bars)
        + "</svg>"
    )


def when(seconds: float) -> str:
    """A unix time as local date and time, to the second."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))
