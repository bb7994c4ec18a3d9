"""Calibration: fit the model's distributions from measurements and write the parameter
file a person reads and edits.

Two sources:
- a load-test export (`simulation.exports`);
- rows of the PostgreSQL `attempts` table, given as plain mappings, so this package never
  imports the record store (design §1a: `simulation` may not depend on how `core` reads
  PostgreSQL). Field names read from each row:

  | field          | type                              | required | meaning                      |
  |----------------|-----------------------------------|----------|------------------------------|
  | enqueued_at    | datetime, epoch seconds, ISO text | yes      | task entered its stream      |
  | started_at     | same                              | yes      | this attempt's handler start |
  | finished_at    | same, or None while running       | no       | this attempt's end           |
  | attempt        | int, 1 for the first              | no (1)   | attempt number               |
  | status         | "succeeded", "failed", ...        | no       | outcome; "failed" counts     |
  | partition_key  | str                               | no       | for the hot-key share        |

Choice of service-time shape: exponential and lognormal are fitted by maximum likelihood
and scored by the Kolmogorov-Smirnov distance; the better one is kept if that distance is
at most `KS_ACCEPT`, otherwise the measurements are kept as 201 quantile points (an
empirical distribution), because a planner trusts the data over a shape that misfits it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from homeport.simulation.distributions import EmpiricalService, ExponentialService, LognormalService
from homeport.simulation.errors import CalibrationError, EmptyTraceError, ParameterError
from homeport.simulation.exports import LoadTestExport
from homeport.simulation.params import ModelParams
from scipy import stats

KS_ACCEPT = 0.03
"""Largest Kolmogorov-Smirnov distance at which a fitted shape is preferred to the data."""

TARGET_UTILISATION = 0.7
"""Utilisation used to propose a worker count when the measurements do not say one."""

Fitted = ExponentialService | LognormalService | EmpiricalService


@dataclass(frozen=True)
class ServiceFit:
    """The chosen distribution and why: sample count and each candidate's KS distance."""

    service_time: Fitted
    samples: int
    ks_exponential: float
    ks_lognormal: float


def fit_service_time(samples: Iterable[float]) -> ServiceFit:
    """Fit service times; see the module docstring for how the shape is chosen."""
    values = np.asarray([float(v) for v in samples], dtype=float)
    if not len(values):
        raise EmptyTraceError(
            "service_time samples",
            [],
            "nothing to fit",
            "supply at least one measured service time",
        )
    if np.any(values < 0) or not np.all(np.isfinite(values)):
        raise CalibrationError(
            "service_time samples hold negative or non-finite values; "
            "check the clocks of started_at/finished_at"
        )
    mean = float(values.mean())
    if mean <= 0:
        raise CalibrationError("all service times are zero; the export measured nothing")
    exponential = ExponentialService(mean_s=mean)
    ks_exp = float(stats.kstest(values, "expon", args=(0, mean)).statistic)
    positive = values[values > 0]
    mu, sigma = float(np.mean(np.log(positive))), float(np.std(np.log(positive)))
    lognormal = LognormalService(median_s=math.exp(mu), sigma=sigma)
    ks_log = float(stats.kstest(values, "lognorm", args=(sigma, 0, math.exp(mu))).statistic)
    chosen: Fitted
    if min(ks_exp, ks_log) <= KS_ACCEPT:
        chosen = exponential if ks_exp <= ks_log else lognormal
    else:
        points = np.quantile(values, np.linspace(0.0, 1.0, 201))
        chosen = EmpiricalService(samples_s=tuple(float(p) for p in points))
    return ServiceFit(chosen, len(values), ks_exp, ks_log)


def _seconds(value: Any, field: str) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            pass
    raise ParameterError(
        field, value, "is not a time", "give a datetime, epoch seconds or ISO-8601 text"
    )


@dataclass(frozen=True)
class AttemptStats:
    """What the `attempts` records say about load, service, waits, failures and skew."""

    arrival_rate_per_s: float
    service_times_s: tuple[float, ...]
    queue_waits_s: tuple[float, ...]
    failure_probability: float
    hot_key_share: float
    tasks: int


def attempt_stats(rows: Iterable[Mapping[str, Any]]) -> AttemptStats:
    """Reduce `attempts` rows (see the module docstring for fields) to model inputs."""
    enqueued: list[float] = []
    waits: list[float] = []
    services: list[float] = []
    finished = failed = 0
    keys: Counter[str] = Counter()
    for index, row in enumerate(rows):
        where = f"attempts[{index}]"
        for name in ("enqueued_at", "started_at"):
            if row.get(name) is None:
                raise ParameterError(
                    f"{where}.{name}",
                    None,
                    "is missing",
                    "select enqueued_at, started_at, finished_at per attempt",
                )
        started = _seconds(row["started_at"], f"{where}.started_at")
        if int(row.get("attempt", 1)) == 1:
            queued = _seconds(row["enqueued_at"], f"{where}.enqueued_at")
            enqueued.append(queued)
            waits.append(max(0.0, started - queued))
            if row.get("partition_key") is not None:
                keys[str(row["partition_key"])] += 1
        if row.get("finished_at") is not None:
            services.append(
                max(0.0, _seconds(row["finished_at"], f"{where}.finished_at") - started)
            )
            finished += 1
            failed += str(row.get("status", "")).lower() == "failed"
    if not enqueued:
        raise EmptyTraceError(
            "attempts",
            [],
            "holds no first attempts",
            "export rows with attempt = 1 (or no attempt column)",
        )
    span = max(enqueued) - min(enqueued)
    if span <= 0:
        raise CalibrationError(
            "all first attempts were enqueued at the same instant; "
            "export a window of at least a few seconds"
        )
    hot = keys.most_common(1)[0][1] / sum(keys.values()) if len(keys) > 1 else 0.0
    return AttemptStats(
        arrival_rate_per_s=len(enqueued) / span,
        service_times_s=tuple(services),
        queue_waits_s=tuple(waits),
        failure_probability=failed / finished if finished else 0.0,
        hot_key_share=hot,
        tasks=len(enqueued),
    )


def _proposed_workers(rate: float, mean_s: float, concurrency: int) -> int:
    return max(1, math.ceil(rate * mean_s / (concurrency * TARGET_UTILISATION)))


def params_from_export(
    export: LoadTestExport, *, region: str = "region-1", seed: int = 0
) -> tuple[ModelParams, ServiceFit]:
    """Model parameters replaying the load test's setup (or a proposed one)."""
    field, measured = export.service_measurement
    fit = fit_service_time(measured.values(field))
    setup = export.setup
    concurrency = setup.concurrency if setup else 1
    workers = (
        setup.workers
        if setup
        else _proposed_workers(export.rate, fit.service_time.mean, concurrency)
    )
    params = ModelParams.model_validate(
        {
            "service_time": fit.service_time.model_dump(),
            "regions": [
                {
                    "name": region,
                    "arrivals": {"kind": "poisson", "rate_per_s": export.rate},
                    "workers": workers,
                    "concurrency": concurrency,
                    "partitions": setup.partitions if setup else 64,
                    "owners": setup.owners if setup else None,
                }
            ],
            "max_tasks": min(1_000_000, max(50_000, round(export.rate * export.duration_s))),
            "seed": seed,
        }
    )
    return params, fit


def params_from_attempts(
    found: AttemptStats, *, region: str = "region-1", concurrency: int = 1, seed: int = 0
) -> tuple[ModelParams, ServiceFit]:
    """Model parameters from `attempts` records, with a worker count proposed at 70%."""
    fit = fit_service_time(found.service_times_s)
    params = ModelParams.model_validate(
        {
            "service_time": fit.service_time.model_dump(),
            "regions": [
                {
                    "name": region,
                    "arrivals": {"kind": "poisson", "rate_per_s": found.arrival_rate_per_s},
                    "workers": _proposed_workers(
                        found.arrival_rate_per_s, fit.service_time.mean, concurrency
                    ),
                    "concurrency": concurrency,
                }
            ],
            "keys": {"hot_key_share": min(found.hot_key_share, 0.99)},
            "retries": {"failure_probability": min(found.failure_probability, 0.99)},
            "seed": seed,
        }
    )
    return params, fit


def write_params(params: ModelParams, path: str | Path, *, source: str, fit: ServiceFit) -> None:
    """Write `params` as commented YAML: the header says where each number came from."""
    header = [
        "# homeport simulation parameters — edit freely; `homeport plan --params` reads this.",
        f"# Calibrated from: {source}",
        f"# Service time: {fit.service_time.kind} chosen from {fit.samples} samples "
        f"(KS distance: exponential {fit.ks_exponential:.3f}, "
        f"lognormal {fit.ks_lognormal:.3f}; accepted at <= {KS_ACCEPT}).",
        "# Units: *_s are seconds, *_per_s per second. Worker counts are proposals at "
        f"{TARGET_UTILISATION:.0%} utilisation unless the export said what ran.",
        "# Format: docs/simulation.md.",
        "",
    ]
    body = yaml.safe_dump(
        params.model_dump(mode="json", exclude_none=True),
        sort_keys=False,
        default_flow_style=None,
        width=100,
    )
    Path(path).write_text("\n".join(header) + body)
