"""A PNG of a dashboard, drawn with matplotlib from a real Prometheus server.

There is no Grafana server here, so docs/observability.md shows this rendering instead
of a screenshot: the same panels, the same queries (`observe.panels`), evaluated by
Prometheus over a time range of a real run, one small chart per panel. It is labelled
as a rendering wherever it is shown.
"""

from __future__ import annotations

import time
from pathlib import Path

import matplotlib
from homeport.observe.panels import Panel, Row, substitute
from homeport.regions.prometheus import PrometheusClient

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402


def _legend(template: str, labels: dict[str, str]) -> str:
    out = template
    for key, value in labels.items():
        out = out.replace("{{" + key + "}}", value)
    return out


def _draw(
    ax: Axes, panel: Panel, prom: PrometheusClient, start: float, end: float, step: float
) -> int:
    lines = 0
    for query in panel.queries:
        for series in prom.query_range(substitute(query.expr), start, end, step):
            xs = [float(t) - start for t, _ in series["values"]]
            ys = [float(v) for _, v in series["values"]]
            ax.plot(xs, ys, linewidth=1.2, label=_legend(query.legend, series["metric"]))
            lines += 1
    ax.set_title(panel.title, fontsize=8)
    ax.tick_params(labelsize=6)
    ax.set_xlabel("seconds into the run", fontsize=6)
    if panel.unit not in ("short", ""):
        ax.set_ylabel(panel.unit, fontsize=6)
    if lines:
        ax.legend(fontsize=5, loc="upper left")
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    return lines


def render(
    rows: tuple[Row, ...],
    prometheus_url: str,
    out: Path,
    start: float,
    end: float | None = None,
    title: str = "homeport / overview",
) -> int:
    """Draw every panel of `rows` over [start, end] into `out`; returns the number of
    series drawn (0 means the server had no data: the caller should treat it as a failure)."""
    end = end or time.time()
    step = max(1.0, (end - start) / 300)
    prom = PrometheusClient(prometheus_url)
    width = max(len(r.panels) for r in rows)
    fig, axes = plt.subplots(len(rows), width, figsize=(5 * width, 3.1 * len(rows)), squeeze=False)
    drawn = 0
    for r, row in enumerate(rows):
        for c in range(width):
            ax = axes[r][c]
            if c < len(row.panels):
                drawn += _draw(ax, row.panels[c], prom, start, end, step)
            else:
                ax.axis("off")
        axes[r][0].annotate(
            row.title,
            xy=(-0.25, 0.5),
            xycoords="axes fraction",
            rotation=90,
            va="center",
            fontsize=9,
            fontweight="bold",
        )
    fig.suptitle(
        f"{title}: a matplotlib rendering of the dashboard's panels (not a Grafana "
        f"screenshot), from a real Prometheus scraping a local cluster",
        fontsize=10,
    )
    fig.tight_layout(rect=(0.02, 0, 1, 0.97))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return drawn
