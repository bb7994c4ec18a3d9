"""The load-test export: what `loadtest/` writes and calibration reads.

Format `homeport-loadtest-export/1`, JSON or YAML (JSON is YAML, so one loader reads both):

    format: homeport-loadtest-export/1
    duration_s: 300.0                 # length of the measured window, seconds
    arrival_rate_per_s: 5000.0        # offered load; or give `tasks` and it is derived
    tasks: 1500000                    # optional: tasks completed in the window
    setup:                            # optional: what served the load (enables comparison)
      workers: 4
      concurrency: 8
      partitions: 64
    service_time_s:                   # handler run time: samples or a histogram
      samples: [0.0041, 0.0052, ...]
    queue_wait_s:                     # enqueue to handler start (optional)
      histogram: {bounds_s: [0.001, 0.002, 0.005], counts: [900, 80, 20]}
    end_to_end_s: {...}               # submit to finish (optional)
    slot_hold_s:                      # begin step + handler: the slot's hold (optional)
      histogram: {bounds_s: [...], counts: [...]}
    arrival_times_s: [0.0, 0.013, ...] # each task's enqueue, s from the first (optional)

A histogram gives each bucket's upper bound in seconds, ascending, and the count that fell
in it (not cumulative; the first bucket starts at 0). Measured percentiles
(`p50_s`, `p99_s`) may be given next to samples or histograms and win over ones computed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from homeport.simulation.errors import EmptyTraceError, ParameterError
from homeport.simulation.params import parameter_error_from
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

EXPORT_FORMAT = "homeport-loadtest-export/1"
_MAX_EXPANDED = 50_000


class Histogram(BaseModel):
    """Bucketed measurements: `counts[i]` values fell in (bounds_s[i-1], bounds_s[i]]."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    bounds_s: tuple[float, ...]
    counts: tuple[int, ...]

    @model_validator(mode="after")
    def _check(self) -> Histogram:
        if len(self.bounds_s) != len(self.counts) or not self.counts:
            raise ParameterError(
                "histogram.counts",
                self.counts,
                f"needs one count per bound ({len(self.bounds_s)} bounds)",
                "list bounds_s and counts of equal, non-zero length",
            )
        if any(b <= a for a, b in zip(self.bounds_s, self.bounds_s[1:], strict=False)):
            raise ParameterError(
                "histogram.bounds_s",
                self.bounds_s,
                "not ascending",
                "list upper bounds from smallest to largest",
            )
        if any(c < 0 for c in self.counts) or sum(self.counts) == 0:
            raise EmptyTraceError(
                "histogram.counts",
                self.counts,
                "counts must be >= 0 and not all zero",
                "export real counts",
            )
        return self

    def expand(self) -> np.ndarray:
        """Pseudo-samples spread evenly inside each bucket, at most 50,000 in total."""
        scale = min(1.0, _MAX_EXPANDED / sum(self.counts))
        lows = (0.0, *self.bounds_s[:-1])
        parts = []
        for low, high, count in zip(lows, self.bounds_s, self.counts, strict=True):
            n = max(1, round(count * scale)) if count else 0
            parts.append(low + (high - low) * (np.arange(n) + 0.5) / max(n, 1))
        return np.concatenate(parts)


class Measurement(BaseModel):
    """One measured quantity: raw samples, a histogram, and/or reported percentiles."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    samples: tuple[float, ...] | None = None
    histogram: Histogram | None = None
    p50_s: float | None = None
    p99_s: float | None = None

    def values(self, field: str) -> np.ndarray:
        if self.samples:
            return np.asarray(self.samples, dtype=float)
        if self.histogram is not None:
            return self.histogram.expand()
        raise EmptyTraceError(
            field,
            self.samples,
            "holds no samples and no histogram",
            "export samples or a histogram of this measurement",
        )

    def percentile(self, q: float, field: str) -> float:
        reported = {0.5: self.p50_s, 0.99: self.p99_s}.get(q)
        if reported is not None:
            return reported
        return float(np.quantile(self.values(field), q))


class Setup(BaseModel):
    """The deployment that served a load test, so the model can replay it."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    workers: int = Field(ge=1)
    concurrency: int = Field(default=1, ge=1)
    partitions: int = Field(default=64, ge=1)
    # Per partition, the worker (0..workers-1) that ran most of it (optional; newer
    # exports): the measured split of partitions, which need not be even.
    owners: tuple[int, ...] | None = None


class LoadTestExport(BaseModel):
    """A load-test run's measurements, as written by `loadtest/` for calibration."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    format: Literal["homeport-loadtest-export/1"] = "homeport-loadtest-export/1"
    duration_s: float = Field(gt=0)
    arrival_rate_per_s: float | None = Field(default=None, gt=0)
    tasks: int | None = Field(default=None, ge=1)
    setup: Setup | None = None
    service_time_s: Measurement
    queue_wait_s: Measurement | None = None
    end_to_end_s: Measurement | None = None
    # How long a task held its handler slot: begin step + handler (optional; newer
    # exports). The model's service time when present (see `service_measurement`).
    slot_hold_s: Measurement | None = None
    # When each task was enqueued, seconds from the first (optional; newer exports): the
    # measured arrival process, which `plan validate` replays instead of Poisson arrivals.
    arrival_times_s: tuple[float, ...] | None = None

    @property
    def service_measurement(self) -> tuple[str, Measurement]:
        """What the model's service time is fitted on: the slot hold time when the export
        has it (a slot is held from the begin step to the handler's end), else the
        handler time, which leaves the begin round trip out and makes the model
        optimistic near saturation."""
        if self.slot_hold_s is not None:
            return "slot_hold_s", self.slot_hold_s
        return "service_time_s", self.service_time_s

    @property
    def rate(self) -> float:
        if self.arrival_rate_per_s is not None:
            return self.arrival_rate_per_s
        if self.tasks is not None:
            return self.tasks / self.duration_s
        raise ParameterError(
            "arrival_rate_per_s",
            None,
            "the export gives no load",
            "add arrival_rate_per_s, or tasks with duration_s",
        )


def load_export(source: Mapping[str, Any] | str | Path) -> LoadTestExport:
    """Read a load-test export from a JSON/YAML file or a mapping, refusing bad fields."""
    if isinstance(source, str | Path):
        try:
            source = yaml.safe_load(Path(source).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ParameterError(
                "export file",
                str(source),
                f"cannot be read ({exc})",
                "check the path and that it is JSON or YAML",
            ) from exc
        if not isinstance(source, Mapping):
            raise ParameterError(
                "export file", "…", "is not a mapping", f"write a {EXPORT_FORMAT} document"
            )
    try:
        return LoadTestExport.model_validate(dict(source))
    except ValidationError as exc:
        raise parameter_error_from(exc) from exc
