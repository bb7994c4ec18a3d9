"""How the planner's answers are shown: JSON (non-finite numbers as null) or rich tables."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
from homeport.simulation.durations import format_duration
from homeport.simulation.planner import Plan
from rich.console import Console
from rich.table import Table


def emit(as_json: bool, data: dict[str, Any], render: Callable[[Console], None]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=_json_default))
    else:
        render(Console())


def _json_default(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


def finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def plan_json(result: Plan, plots: list[Path]) -> dict[str, Any]:
    return {
        "workers_per_region": result.workers_per_region,
        "headroom_normal": result.headroom_normal,
        "headroom_after_failover": result.headroom_after_failover,
        "scenarios": [
            {k: v for k, v in asdict(s).items() if k != "evaluations"}
            | {"evaluations": [asdict(e) for e in s.evaluations]}
            for s in result.scenarios
        ],
        "drains": [
            {
                k: finite(v) if isinstance(v, float) else v
                for k, v in asdict(d).items()
                if k not in ("times_s", "backlog")
            }
            for d in result.drains
        ],
        "plots": [str(p) for p in plots],
    }


def render_plan(console: Console, result: Plan, plots: list[Path]) -> None:
    request = result.request
    table = Table(
        title=f"Workers for {request.rate_per_s:,.0f} tasks/s, p99 wait ≤ "
        f"{format_duration(request.p99_wait_s)}"
    )
    for column in ("scenario", "region", "rate/s", "workers", "p99 wait", "utilisation"):
        table.add_column(column, justify="right" if column != "scenario" else "left")
    for s in result.scenarios:
        table.add_row(
            s.name,
            s.region,
            f"{s.rate_per_s:,.0f}",
            str(s.workers),
            format_duration(s.p99_wait_s),
            f"{s.utilisation:.0%}",
        )
    console.print(table)
    needed = ", ".join(f"{k}: {v}" for k, v in result.workers_per_region.items())
    console.print(
        f"Workers per region to provision: [bold]{needed}[/bold] "
        f"(concurrency {request.workload.concurrency}, "
        f"{request.workload.partitions} partitions each)"
    )
    console.print(f"Headroom in normal operation: {result.headroom_normal:.0%} spare capacity")
    if result.headroom_after_failover is not None:
        console.print(f"Headroom with one region down: {result.headroom_after_failover:.0%}")
    for d in result.drains:
        console.print(
            f"Backlog after {d.failed} fails ({d.backlog_tasks:,.0f} tasks at promotion) "
            f"drains on {d.standby} in {format_duration(d.drain_time_s)} simulated "
            f"(fluid estimate: {format_duration(d.fluid_busiest_worker_s)} busiest worker, "
            f"{format_duration(d.fluid_drain_time_s)} pooled)"
        )
    for path in plots:
        console.print(f"Plot written: {path}")
