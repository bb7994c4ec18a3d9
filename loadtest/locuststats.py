"""Reading what Locust wrote: `<prefix>_stats.csv` and `<prefix>_stats_history.csv`.

Locust reports times in milliseconds; percentiles above 100 ms are rounded by Locust to
two significant digits. The `Aggregated` row sums every request name.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from homeport.loadtest.errors import RunError

AGGREGATED = "Aggregated"


@dataclass(frozen=True)
class RequestStats:
    """One row of the stats CSV: one request name (or the aggregate)."""

    name: str
    requests: int
    failures: int
    median_ms: float
    p99_ms: float
    max_ms: float
    rps: float

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class HistoryPoint:
    """One second of the run (aggregate row of the history CSV)."""

    timestamp: int
    users: int
    rps: float
    p99_ms: float
    requests: int
    failures: int


def _num(text: str) -> float:
    return 0.0 if text in ("", "N/A") else float(text)


def read_stats(prefix: Path) -> dict[str, RequestStats]:
    """Rows of `<prefix>_stats.csv` by request name (`Aggregated` included)."""
    path = Path(f"{prefix}_stats.csv")
    if not path.exists():
        raise RunError(f"Locust wrote no statistics at {path}; see its log next to it")
    out = {}
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            out[row["Name"]] = RequestStats(
                name=row["Name"],
                requests=int(row["Request Count"]),
                failures=int(row["Failure Count"]),
                median_ms=_num(row["Median Response Time"]),
                p99_ms=_num(row["99%"]),
                max_ms=_num(row["Max Response Time"]),
                rps=_num(row["Requests/s"]),
            )
    if AGGREGATED not in out:
        raise RunError(f"{path} has no {AGGREGATED} row")
    return out


def read_history(prefix: Path) -> list[HistoryPoint]:
    """The aggregate row of each second of `<prefix>_stats_history.csv` (may be empty)."""
    path = Path(f"{prefix}_stats_history.csv")
    if not path.exists():
        return []
    points = []
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["Name"] != AGGREGATED:
                continue
            points.append(HistoryPoint(
                timestamp=int(row["Timestamp"]),
                users=int(row["User Count"]),
                rps=_num(row["Requests/s"]),
                p99_ms=_num(row["99%"]),
                requests=int(row["Total Request Count"]),
                failures=int(row["Total Failure Count"]),
            ))  # fmt: skip
    return points
