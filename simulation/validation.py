"""Validation: the model's prediction beside measured load tests at several load levels.

The model is calibrated on one export (its service-time fit, by default the first
file's), then run once per export at that export's measured arrival rate and setup
(workers, concurrency, partitions), and its queue waits are put next to the measured
ones. Only the load changes between levels, so the comparison tests what a planner
relies on: how the waits grow with the load, from a fit made at a single load.

`dispatch_s` is the measured queue wait that no queueing model holds: the time from
enqueue to handler start of a task that waited for nobody (stream read, the begin step,
the event loop). It is estimated as the measured p50 wait of the least-loaded level,
where queueing is rarest, and reported beside the prediction, which is
`predicted wait + dispatch`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from homeport.simulation.calibration import ServiceFit, fit_service_time, params_from_export
from homeport.simulation.errors import ParameterError
from homeport.simulation.exports import LoadTestExport
from homeport.simulation.model import simulate
from homeport.simulation.params import ModelParams
from homeport.simulation.results import summarise


@dataclass(frozen=True)
class LevelCheck:
    """One load level: what was measured, what the model predicts (seconds)."""

    label: str
    rate_per_s: float
    utilisation: float
    measured_mean_s: float
    measured_p50_s: float
    measured_p99_s: float
    model_mean_s: float
    model_p50_s: float
    model_p99_s: float
    dispatch_s: float

    @property
    def predicted_p50_s(self) -> float:
        return self.model_p50_s + self.dispatch_s

    @property
    def predicted_p99_s(self) -> float:
        return self.model_p99_s + self.dispatch_s

    @property
    def p99_ratio(self) -> float:
        """Measured p99 over predicted p99 (1 = exact; > 1: the model is optimistic)."""
        return self.measured_p99_s / self.predicted_p99_s if self.predicted_p99_s else np.inf


def _waits(export: LoadTestExport, label: str) -> np.ndarray:
    if export.queue_wait_s is None:
        raise ParameterError(
            "queue_wait_s",
            None,
            f"{label} has no measured queue wait to compare with",
            "export a load test run by `homeport loadtest run` (it records queue waits)",
        )
    return export.queue_wait_s.values(f"{label}: queue_wait_s")


def validate(
    exports: Sequence[tuple[str, LoadTestExport]],
    *,
    calibrate_on: int = 0,
    tasks: int = 100_000,
    seed: int = 0,
) -> tuple[ServiceFit, list[LevelCheck]]:
    """Calibrate on `exports[calibrate_on]`, predict every export's waits (see above)."""
    if not exports:
        raise ParameterError("exports", [], "nothing to validate", "give one export per level")
    if not 0 <= calibrate_on < len(exports):
        raise ParameterError(
            "calibrate_on",
            calibrate_on,
            f"is not one of the {len(exports)} exports",
            f"give 0 to {len(exports) - 1}",
        )
    label0, base = exports[calibrate_on]
    field, measured_service = base.service_measurement
    fit = fit_service_time(measured_service.values(f"{label0}: {field}"))
    measured = {label: _waits(export, label) for label, export in exports}
    quietest = min(exports, key=lambda item: item[1].rate)[0]
    dispatch = float(np.quantile(measured[quietest], 0.5))
    checks = []
    for label, export in exports:
        replay, _ = params_from_export(export, seed=seed)
        raw = replay.model_dump()
        raw.update(service_time=fit.service_time.model_dump(), max_tasks=tasks)
        params = ModelParams.model_validate(raw)
        record = simulate(params)
        model = summarise(record, params.warmup_fraction)
        waits = measured[label]
        checks.append(
            LevelCheck(
                label=label,
                rate_per_s=export.rate,
                utilisation=params.utilisation(params.regions[0]),
                measured_mean_s=float(np.mean(waits)),
                measured_p50_s=float(np.quantile(waits, 0.5)),
                measured_p99_s=float(np.quantile(waits, 0.99)),
                model_mean_s=model.mean_wait_s,
                model_p50_s=model.p50_wait_s,
                model_p99_s=model.p99_wait_s,
                dispatch_s=dispatch,
            )
        )
    return fit, sorted(checks, key=lambda c: c.rate_per_s)
