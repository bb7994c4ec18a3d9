"""The peer benchmark's outputs: a Markdown table (for docs/benchmarks.md) and a plot."""

from __future__ import annotations

from pathlib import Path

from homeport.loadtest.peers.bench import PeerResult

RAW = "raw Redis streams"


def _rate(values: list[float]) -> str:
    if not values:
        return "—"
    from statistics import median

    return f"{median(values):,.0f} ({min(values):,.0f}–{max(values):,.0f})"


def markdown_table(results: list[PeerResult]) -> str:
    raw = next((r for r in results if r.name == RAW and not r.error), None)
    rows = [
        "| queue | enqueue tasks/s | run tasks/s | end to end tasks/s, median (min–max) "
        "| × raw (e2e) | worker start s | latency p50 / p99 ms | N |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r.error:
            rows.append(f"| {r.name} | failed: {r.error[:80]} | | | | | | |")
            continue
        ratio = f"{r.e2e_median / raw.e2e_median:.2f}" if raw and raw.e2e_median else "—"
        lat = (
            f"{r.latency_p50_ms:.2f} / {r.latency_p99_ms:.2f}"
            if r.latency_p50_ms is not None and r.latency_p99_ms is not None
            else "—"
        )
        rows.append(
            f"| {r.name} | {_rate(r.enqueue)} | {_rate(r.run)} | {_rate(r.end_to_end)} "
            f"| {ratio} | {r.start_median:.2f} | {lat} | {r.tasks:,} |"
        )
    return "\n".join(rows)


def plot(results: list[PeerResult], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = sorted((r for r in results if not r.error), key=lambda r: r.e2e_median)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 0.5 * len(ok) + 2))
    names = [r.name for r in ok]
    med = [r.e2e_median for r in ok]
    lo = [m - min(r.end_to_end) for m, r in zip(med, ok, strict=True)]
    hi = [max(r.end_to_end) - m for m, r in zip(med, ok, strict=True)]
    colors = [
        "#d62728" if r.name.startswith("homeport") else "#7f7f7f" if r.name == RAW else "#1f77b4"
        for r in ok
    ]
    ax1.barh(names, med, xerr=[lo, hi], color=colors)
    ax1.set_xscale("log")
    ax1.set_xlabel("end-to-end tasks/s (log; median of runs, bars min–max)")
    lat = [r for r in ok if r.latency_p50_ms is not None]
    y = range(len(lat))
    ax2.barh(
        [r.name for r in lat], [r.latency_p99_ms or 0 for r in lat], color="#ff9896", label="p99"
    )
    ax2.barh(
        [r.name for r in lat], [r.latency_p50_ms or 0 for r in lat], color="#d62728", label="p50"
    )
    ax2.set_xscale("log")
    ax2.set_xlabel("light-load enqueue → handler start, ms (log)")
    ax2.set_yticks(list(y), [""] * len(lat))
    ax2.legend(loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
