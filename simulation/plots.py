"""Plots of a plan: p99 wait against workers, and backlog against time after a failover.

Figures are drawn with matplotlib's object API on the Agg canvas, never through pyplot,
so planning works on headless machines and leaves no global figure state behind.
"""

from __future__ import annotations

from pathlib import Path

from homeport.simulation.planner import Plan
from homeport.simulation.validation import LevelCheck
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _save(figure: Figure, path: Path) -> Path:
    FigureCanvasAgg(figure)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


def plot_p99_against_workers(plan: Plan, path: Path) -> Path:
    figure = Figure(figsize=(7, 4.5))
    axes = figure.add_subplot()
    seen: set[tuple[float, int]] = set()
    for scenario in plan.scenarios:
        if (scenario.rate_per_s, scenario.partitions) in seen:
            continue
        seen.add((scenario.rate_per_s, scenario.partitions))
        xs = [e.workers for e in scenario.evaluations]
        ys = [e.p99_wait_s * 1e3 for e in scenario.evaluations]
        label = f"{scenario.name} ({scenario.rate_per_s:,.0f}/s on {scenario.region})"
        axes.plot(xs, ys, marker="o", label=label)
    axes.axhline(plan.request.p99_wait_s * 1e3, color="red", linestyle="--", label="target")
    axes.set_xlabel("workers in the region")
    axes.set_ylabel("p99 queue wait (ms)")
    axes.set_yscale("log")
    axes.set_title("p99 queue wait against workers (simulated)")
    axes.legend(fontsize="small")
    return _save(figure, path)


def plot_backlog_after_failover(plan: Plan, path: Path) -> Path:
    figure = Figure(figsize=(7, 4.5))
    axes = figure.add_subplot()
    for drain in plan.drains:
        axes.plot(
            drain.times_s, drain.backlog, label=f"{drain.failed} → {drain.standby} (simulated)"
        )
        axes.axvline(plan.request.promotion_delay_s, color="grey", linestyle=":", label="promotion")
    axes.axvline(0.0, color="red", linestyle=":", label="outage")
    axes.set_xlabel("seconds since the outage")
    axes.set_ylabel("tasks waiting (failed + standby region)")
    axes.set_title("Backlog after a failover")
    axes.legend(fontsize="small")
    return _save(figure, path)


def write_plots(plan: Plan, directory: str | Path) -> list[Path]:
    """Write the plan's plots as PNG files into `directory` (created if missing)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = [plot_p99_against_workers(plan, out / "p99_wait_vs_workers.png")]
    if plan.drains:
        paths.append(plot_backlog_after_failover(plan, out / "backlog_after_failover.png"))
    return paths


def plot_validation(checks: list[LevelCheck], path: Path) -> Path:
    """Measured and predicted p50/p99 queue wait against the load of each level."""
    figure = Figure(figsize=(7, 4.5))
    axes = figure.add_subplot()
    xs = [c.rate_per_s for c in checks]
    for name, measured, predicted, style in (
        ("p50", [c.measured_p50_s for c in checks], [c.predicted_p50_s for c in checks], "o"),
        ("p99", [c.measured_p99_s for c in checks], [c.predicted_p99_s for c in checks], "s"),
    ):
        line = axes.plot(xs, [v * 1e3 for v in measured], marker=style, label=f"{name} measured")
        axes.plot(
            xs, [v * 1e3 for v in predicted], marker=style, linestyle="--",
            color=line[0].get_color(), label=f"{name} model + dispatch",
        )  # fmt: skip
    axes.set_xlabel("arrival rate (tasks/s)")
    axes.set_ylabel("queue wait (ms)")
    axes.set_yscale("log")
    axes.set_title("queue wait: load tests against the calibrated model")
    axes.legend()
    return _save(figure, path)
