"""Independent replications and their confidence intervals.

A single long run's waits are autocorrelated, so their standard error is meaningless;
the means of independent replications (different seeds, each with its own warm-up) are
independent, and a Student-t interval over them is honest. This is how the model is held
to the closed-form results.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from homeport.simulation.checks import at_least
from homeport.simulation.model import simulate
from homeport.simulation.params import ModelParams
from homeport.simulation.results import RunRecord
from scipy import stats


@dataclass(frozen=True)
class Interval:
    """A mean and its two-sided confidence interval at `level`."""

    mean: float
    low: float
    high: float
    level: float

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high


def confidence_interval(values: Sequence[float], level: float = 0.99) -> Interval:
    """Student-t interval of the mean of independent `values`."""
    at_least("replications", len(values), 2, "run at least two replications")
    data = np.asarray(values, dtype=float)
    mean = float(data.mean())
    half = float(stats.t.ppf(0.5 + level / 2.0, len(data) - 1) * stats.sem(data))
    return Interval(mean, mean - half, mean + half, level)


def replicate(
    params: ModelParams,
    replications: int,
    metrics: dict[str, Callable[[RunRecord], float]],
    level: float = 0.99,
) -> dict[str, Interval]:
    """Run `params` with seeds seed, seed+1, ... and give an interval per metric."""
    at_least("replications", replications, 2, "run at least two replications")
    values: dict[str, list[float]] = {name: [] for name in metrics}
    for offset in range(replications):
        record = simulate(params.model_copy(update={"seed": params.seed + offset}))
        for name, metric in metrics.items():
            values[name].append(metric(record))
    return {name: confidence_interval(found, level) for name, found in values.items()}
