"""Arrival processes deliver the rates they promise."""

from __future__ import annotations

import numpy as np
import pytest
from homeport.simulation.arrivals import (
    DiurnalArrivals,
    MmppArrivals,
    PoissonArrivals,
    TraceArrivals,
)


def _all(process: object, horizon: float, seed: int = 1) -> np.ndarray:
    rng = np.random.Generator(np.random.PCG64(seed))
    return np.concatenate(list(process.times(rng, horizon)))  # type: ignore[attr-defined]


def test_poisson_rate_and_order() -> None:
    times = _all(PoissonArrivals(rate_per_s=500), 100.0)
    assert len(times) / 100.0 == pytest.approx(500, rel=0.02)
    assert np.all(np.diff(times) >= 0) and times.max() < 100.0


def test_diurnal_follows_its_sine() -> None:
    process = DiurnalArrivals(mean_rate_per_s=200, amplitude=0.8, period_s=100.0)
    times = _all(process, 400.0)
    assert len(times) / 400.0 == pytest.approx(200, rel=0.03)
    # the first quarter of each period (rising to the peak) is busier than the third
    phase = (times % 100.0) // 25.0
    assert np.sum(phase == 0) > 2.5 * np.sum(phase == 2)


def test_mmpp_mean_rate_and_burstiness() -> None:
    process = MmppArrivals(rates_per_s=(100, 2000), mean_sojourn_s=(4.0, 1.0))
    assert process.mean_rate == pytest.approx((100 * 4 + 2000 * 1) / 5)
    times = _all(process, 2000.0)
    assert len(times) / 2000.0 == pytest.approx(process.mean_rate, rel=0.1)
    counts = np.bincount(times.astype(int))
    assert counts.var() > 5 * counts.mean()  # far burstier than Poisson (var = mean)


def test_trace_replays_exactly() -> None:
    process = TraceArrivals(times_s=(0.5, 0.1, 2.0, 3.5))
    assert _all(process, 3.0).tolist() == [0.1, 0.5, 2.0]
    assert process.mean_rate == pytest.approx(4 / 3.5)
