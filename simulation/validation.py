"""Validation: the model's prediction beside measured load tests at several load levels.

The model is calibrated on one export (its service-time fit, by default the first
file's), then run once per export at that export's measured load and setup (workers,
concurrency, partitions), and its queue waits are put next to the measured ones. Only
the load changes between levels, so the comparison tests what a planner relies on: how
the waits grow with the load, from a fit made at a single load.

The load is the export's measured arrival process when it has one (`arrival_times_s`,
each task's enqueue time), replayed as a trace and tiled to `tasks`; else Poisson
arrivals at the measured rate (`arrivals="poisson"` forces that). The difference is
large: Locust users submitting at a constant throughput are far more regular than a
Poisson stream, and a queue near saturation waits about half as long behind them.

`dispatch_s` is the measured queue wait that no queueing model holds: the time from
enqueue to handler start of a task that waited for nobody (stream read, the begin step,
the event loop). It is estimated as the measured p50 wait of the least-loaded level,
where queueing is rarest, and reported beside the prediction, which is
`predicted wait + dispatch`.

Beside the prediction, each level is also run with *its own* measured service time
(`own_p50_s`, `own_p99_s`): not a prediction (it uses the level's measurement), but the
diagnosis of a miss: when the own-fit run matches and the prediction does not, the slot
hold changed with the load (`hold_mean_s` per level shows how).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from homeport.simulation.calibration import ServiceFit, fit_service_time, params_from_export
from homeport.simulation.errors import ParameterError
from homeport.simulation.exports import LoadTestExport
from homeport.simulation.model import simulate
from homeport.simulation.params import ModelParams
from homeport.simulation.results import summarise

ArrivalMode = Literal["measured", "poisson"]
ServiceOrder = Literal["partitions", "fifo"]


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
    # "measured" (the export's enqueue times replayed) or "poisson" (at the measured rate).
    arrivals: str = "poisson"
    # The level's own mean service time (slot hold) and ρ by it: the load it really ran at.
    hold_mean_s: float = math.nan
    measured_utilisation: float = math.nan
    # The model run with the level's own service-time fit (a diagnosis, not a prediction).
    own_p50_s: float = math.nan
    own_p99_s: float = math.nan
    # The spread (10th and 90th percentile over seeds) of the predicted p99 of one run as
    # long as the measured one: how far a single measurement may fall from the prediction
    # by chance alone (see `run_spread`).
    run_p99_low_s: float = math.nan
    run_p99_high_s: float = math.nan

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

    @property
    def p50_ratio(self) -> float:
        """Measured p50 over predicted p50 (1 = exact)."""
        return self.measured_p50_s / self.predicted_p50_s if self.predicted_p50_s else np.inf


def _waits(export: LoadTestExport, label: str) -> np.ndarray:
    if export.queue_wait_s is None:
        raise ParameterError(
            "queue_wait_s",
            None,
            f"{label} has no measured queue wait to compare with",
            "export a load test run by `homeport loadtest run` (it records queue waits)",
        )
    return export.queue_wait_s.values(f"{label}: queue_wait_s")


def tiled_trace(times_s: Sequence[float], tasks: int) -> list[float]:
    """The recorded arrival times repeated back to back until there are at least `tasks`
    (each copy starts one mean gap after the previous one's last arrival), so a short
    recording gives a long, stable model run with the recording's own regularity."""
    times = np.sort(np.asarray(times_s, dtype=float))
    times = times - times[0]
    span = float(times[-1])
    gap = span / (len(times) - 1) if len(times) > 1 and span > 0 else 1.0
    copies = max(1, math.ceil(tasks / len(times)))
    period = span + gap
    return [float(t) for t in np.concatenate([times + k * period for k in range(copies)])]


def _params(
    export: LoadTestExport,
    fit: ServiceFit,
    tasks: int,
    seed: int,
    mode: str,
    order: ServiceOrder = "partitions",
) -> ModelParams:
    replay, _ = params_from_export(export, seed=seed)
    raw = replay.model_dump()
    raw.update(service_time=fit.service_time.model_dump(), max_tasks=tasks, service_order=order)
    if mode == "measured":
        trace = tiled_trace(export.arrival_times_s or (), tasks)
        raw["regions"][0]["arrivals"] = {"kind": "trace", "times_s": trace}
        raw["max_tasks"] = len(trace)
    return ModelParams.model_validate(raw)


def validate(
    exports: Sequence[tuple[str, LoadTestExport]],
    *,
    calibrate_on: int = 0,
    tasks: int = 100_000,
    seed: int = 0,
    arrivals: ArrivalMode = "measured",
    order: ServiceOrder = "partitions",
    spread_seeds: int = 20,
) -> tuple[ServiceFit, list[LevelCheck]]:
    """Calibrate on `exports[calibrate_on]`, predict every export's waits (see above).
    `arrivals="measured"` replays an export's enqueue times when it has them; `order` is
    the model's service order (`ModelParams.service_order`); `spread_seeds` runs give the
    p99 spread of one measured run (0: not computed)."""
    if not exports:
        raise ParameterError("exports", [], "nothing to validate", "give one export per level")
    if not 0 <= calibrate_on < len(exports):
        raise ParameterError(
            "calibrate_on",
            calibrate_on,
            f"is not one of the {len(exports)} exports",
            f"give 0 to {len(exports) - 1}",
        )
    if arrivals not in ("measured", "poisson"):
        raise ParameterError(
            "arrivals", arrivals, "is not an arrival mode", "give measured or poisson"
        )
    label0, base = exports[calibrate_on]
    field, measured_service = base.service_measurement
    fit = fit_service_time(measured_service.values(f"{label0}: {field}"))
    measured = {label: _waits(export, label) for label, export in exports}
    quietest = min(exports, key=lambda item: item[1].rate)[0]
    dispatch = float(np.quantile(measured[quietest], 0.5))
    checks = []
    for label, export in exports:
        mode = "measured" if arrivals == "measured" and export.arrival_times_s else "poisson"
        params = _params(export, fit, tasks, seed, mode, order)
        model = summarise(simulate(params), params.warmup_fraction)
        own_field, own_service = export.service_measurement
        own_fit = fit_service_time(own_service.values(f"{label}: {own_field}"))
        own_params = _params(export, own_fit, tasks, seed, mode, order)
        own = summarise(simulate(own_params), own_params.warmup_fraction)
        low, high = run_spread(export, fit, mode, order, spread_seeds)
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
                arrivals=mode,
                hold_mean_s=own_fit.service_time.mean,
                measured_utilisation=own_params.utilisation(own_params.regions[0]),
                own_p50_s=own.p50_wait_s + dispatch,
                own_p99_s=own.p99_wait_s + dispatch,
                run_p99_low_s=low + dispatch,
                run_p99_high_s=high + dispatch,
            )
        )
    return fit, sorted(checks, key=lambda c: c.rate_per_s)


def run_spread(
    export: LoadTestExport,
    fit: ServiceFit,
    mode: str,
    order: ServiceOrder = "partitions",
    seeds: int = 20,
) -> tuple[float, float]:
    """10th and 90th percentile, over `seeds` seeds, of the model's p99 wait in runs of the
    export's own length (its trace once, or as many Poisson arrivals as it had tasks):
    a p99 of a few thousand correlated waits is itself uncertain, by this much."""
    if seeds < 1:
        return math.nan, math.nan
    tasks = len(export.arrival_times_s or ()) or round(export.rate * export.duration_s)
    p99s = []
    for seed in range(seeds):
        params = _params(export, fit, tasks, seed, mode, order)
        p99s.append(summarise(simulate(params), params.warmup_fraction).p99_wait_s)
    return float(np.quantile(p99s, 0.1)), float(np.quantile(p99s, 0.9))


@dataclass(frozen=True)
class LevelLoad:
    """A load level sized on a measured capacity: `users` Locust users at
    `rate_per_user` submits/s each."""

    name: str
    target: float
    rate_per_s: float
    users: int
    rate_per_user: float


def level_loads(
    probe: LoadTestExport, targets: Sequence[float], *, per_user_per_s: float = 4.0
) -> list[LevelLoad]:
    """Loads that put the probe's setup at each target utilisation of its *measured*
    capacity, `workers * concurrency / mean slot hold` (the hold, not the handler's
    nominal time, is what a slot is busy for). Users submit about `per_user_per_s` each;
    the rate per user is then set so the total lands on the target exactly."""
    if probe.setup is None:
        raise ParameterError(
            "setup", None, "the probe export does not say what served it", "export a load test"
        )
    field, hold = probe.service_measurement
    mean_s = float(np.mean(hold.values(field)))
    capacity = probe.setup.workers * probe.setup.concurrency / mean_s
    loads = []
    for target in targets:
        if not 0 < target < 1:
            raise ParameterError(
                "target", target, "is not a utilisation in (0, 1)", "give e.g. 0.5 0.7 0.85"
            )
        rate = target * capacity
        users = max(1, round(rate / per_user_per_s))
        loads.append(LevelLoad(f"rho{round(target * 100):02d}", target, rate, users, rate / users))
    return loads
