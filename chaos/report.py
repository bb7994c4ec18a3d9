"""Reports of one run: `report.md` and `report.html` (plots embedded), beside the history.

Plots (matplotlib, Agg): submits acknowledged per second and submit latency (p50, p99
per second) over time with every fault window shaded, and a timeline of fault steps and
failover events.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first
from homeport.chaos.checker import Verdict  # noqa: E402
from homeport.chaos.history import History, percentile  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if math.isinf(value):
        return "never"
    return f"{value:.1f}{unit}" if unit != "" else f"{value:.3f}"


def _series(history: History) -> tuple[list[int], list[int], list[float], list[float], list[int]]:
    t0 = history.t0
    acked: dict[int, list[float]] = defaultdict(list)
    errors: dict[int, int] = defaultdict(int)
    for op in history.ops:
        second = int(op.sent - t0)
        if op.latency_ms is not None:
            acked[second].append(op.latency_ms)
        else:
            errors[second] += 1
    end = max([*acked, *errors, 0]) + 1
    xs = list(range(end))
    return (
        xs,
        [len(acked[s]) for s in xs],
        [percentile(acked[s], 50) or math.nan for s in xs],
        [percentile(acked[s], 99) or math.nan for s in xs],
        [errors[s] for s in xs],
    )


def _shade(ax: Axes, history: History) -> None:
    t0 = history.t0
    last = max((o.sent for o in history.ops), default=t0) - t0
    for f in history.faults:
        end = (f.end if f.end is not None else t0 + last) - t0
        if f.disruptive:
            ax.axvspan(f.start - t0, max(end, f.start - t0 + 0.2), color="tab:red", alpha=0.12)
    for e in history.events:
        ax.axvline(e.at - t0, color="tab:purple", linestyle="--", linewidth=1)


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def plot_load(history: History) -> bytes:
    xs, acks, p50, p99, errors = _series(history)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    top.plot(xs, acks, label="acknowledged/s", color="tab:blue")
    top.plot(xs, errors, label="failed/s", color="tab:red")
    top.set_ylabel("submits per second")
    top.legend(loc="upper right")
    bottom.plot(xs, p50, label="p50", color="tab:green")
    bottom.plot(xs, p99, label="p99", color="tab:orange")
    bottom.set_yscale("log")
    bottom.set_ylabel("submit latency (ms)")
    bottom.set_xlabel("seconds since the load started (faults shaded, failovers dashed)")
    bottom.legend(loc="upper right")
    for ax in (top, bottom):
        _shade(ax, history)
    return _png(fig)


def plot_timeline(history: History) -> bytes:
    t0 = history.t0
    last = max((o.sent for o in history.ops), default=t0) - t0
    rows = [f"{f.step}: {f.fault} {' '.join(f.targets)[:40]}" for f in history.faults]
    labels = list(dict.fromkeys(rows))
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.4 * (len(labels) + 1)))
    for f, label in zip(history.faults, rows, strict=True):
        end = (f.end if f.end is not None else t0 + last) - t0
        y = labels.index(label)
        ax.barh(y, max(end - (f.start - t0), 0.3), left=f.start - t0,
                color="tab:red" if f.disruptive else "tab:purple", alpha=0.6)  # fmt: skip
    for e in history.events:
        ax.axvline(e.at - t0, color="tab:purple", linestyle="--", linewidth=1)
        ax.text(e.at - t0, len(labels) - 0.4, f"{e.kind} {e.home}", fontsize=8, rotation=0)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylim(-0.6, len(labels) + 0.2)
    ax.set_xlim(0, max(last, 1))
    ax.set_xlabel("seconds since the load started")
    ax.set_title("fault steps and failover events")
    return _png(fig)


def markdown(history: History, verdict: Verdict) -> str:
    meta = history.meta
    spec = meta.get("scenario", {})
    s = verdict.summary()
    lines = [
        f"# Game day: {spec.get('name', '?')} (seed {meta.get('seed', '?')})",
        "",
        f"**Verdict: {s['verdict']}**",
        "",
        f"Hypothesis: {spec.get('hypothesis', '').strip()}",
        "",
        "| measure | value |",
        "|---|---|",
        f"| submits sent / acknowledged / failed | {verdict.sent} / {verdict.acknowledged} / "
        f"{verdict.errors} |",
        f"| tasks executed | {verdict.executed} |",
        f"| acknowledged but lost (violations) | {s['lost']} |",
        f"| lost within the RPO window (reported or predicted) | {s['lost_within_rpo']} |",
        f"| duplicate executions | {verdict.duplicates} ({verdict.duplicated_tasks} tasks) |",
        f"| per-key order violations | {len(verdict.order_violations)} |",
        f"| submit latency p50 / p99 (ms) | {_fmt(verdict.p50_ms, '')} / "
        f"{_fmt(verdict.p99_ms, '')} |",
        f"| time to recover, worst fault (s) | {_fmt(verdict.rto_s, '')} |",
        f"| switch time, worst planned step (s) | {_fmt(verdict.switch_s, '')} |",
        "| region loss -> GLOBAL acknowledged again (s) | "
        + (", ".join(f"{h} {v:.2f}" for h, v in sorted(verdict.global_back_s.items())) or "-")
        + " |",
        f"| mirror lag, largest sample (s) | {_fmt(verdict.max_mirror_lag_s, '')} |",
        "",
        "## Execution recovery, per home",
        "",
        "| home | tasks | longest stall (s) | ack->start p50 / p99 / max (ms), outside faults "
        "| in faults p99 / max (ms) | region loss -> first run (s) |",
        "|---|---|---|---|---|---|",
        *[
            f"| {home} | {r.tasks} | {r.stall_s:.2f} | {_fmt(r.start_p50_ms, '')} / "
            f"{_fmt(r.start_p99_ms, '')} / {_fmt(r.start_max_ms, '')} | "
            f"{_fmt(r.fault_start_p99_ms, '')} / {_fmt(r.fault_start_max_ms, '')} | "
            f"{', '.join(f'{x:.2f}' for x in r.first_run_s) or '-'} |"
            for home, r in sorted(verdict.recovery.items())
        ],
        "",
        "## Lost by durability",
        "",
        "| level | lost | within RPO |",
        "|---|---|---|",
        *[
            f"| {level} | {row['lost']} | {row['within_rpo']} |"
            for level, row in sorted(verdict.lost_by_level().items())
        ],
        *_rpo_lines(verdict),
        "",
        "## Violations",
        "",
        *([f"- {v}" for v in verdict.violations[:50]] or ["none"]),
        "",
        "## Notes",
        "",
        *([f"- {n}" for n in verdict.notes] or ["none"]),
        "",
        "## Timeline",
        "",
        "| t (s) | step | what |",
        "|---|---|---|",
        *[
            f"| {f.start - history.t0:.1f} | {f.step} {f.fault} | {f.detail} |"
            for f in history.faults
        ],
        *[f"| {e.at - history.t0:.1f} | event {e.kind} | {e.detail} |" for e in history.events],
        "",
        "![load](load.png)",
        "",
        "![timeline](timeline.png)",
        "",
    ]
    return "\n".join(lines)


def _rpo_lines(verdict: Verdict) -> list[str]:
    """The predicted RPO of each region loss (`invariants.rpo: predicted`)."""
    if not verdict.rpo:
        return []
    return [
        "",
        "## RPO predicted (chaos.rpo) against lost",
        "",
        "| home | link latency / jitter (ms) | link down with the loss | base delay p50 / max (ms) "
        "| window (ms) "
        "| rate LOCAL+REGION (/s) | lost expected / bound | lost in window / outside "
        "| mirror round trip under the toxic, p50 (ms) |",
        "|---|---|---|---|---|---|---|---|---|",
        *[
            f"| {p.home} | {p.latency_s * 1e3:.0f} / {p.jitter_s * 1e3:.0f} | "
            f"{'no' if p.cut_lead_s is None else f'{p.cut_lead_s * 1e3:.0f} ms before'} | "
            f"{p.base_p50_s * 1e3:.1f} / {p.base_max_s * 1e3:.1f} | "
            f"{p.prediction.window_s * 1e3:.0f} | {p.prediction.rate_per_s:.1f} | "
            f"{p.prediction.expected_lost:.2f} / {p.prediction.bound} | "
            f"{p.lost} / {p.lost_outside} | "
            f"{_fmt(None if p.measured_delay_s is None else p.measured_delay_s * 1e3, '')} |"
            for p in verdict.rpo
        ],
    ]


def write_reports(history: History, verdict: Verdict, out: Path) -> list[Path]:
    load, timeline = plot_load(history), plot_timeline(history)
    (out / "load.png").write_bytes(load)
    (out / "timeline.png").write_bytes(timeline)
    md = markdown(history, verdict)
    (out / "report.md").write_text(md)
    body = html.escape(md.split("![load]")[0])
    images = "".join(
        f'<img alt="{name}" src="data:image/png;base64,{base64.b64encode(data).decode()}"/>'
        for name, data in (("load", load), ("timeline", timeline))
    )
    (out / "report.html").write_text(
        "<!doctype html><meta charset='utf-8'><title>homeport game day</title>"
        f"<pre style='font-family:monospace'>{body}</pre>{images}"
    )
    return [out / "report.md", out / "report.html"]
