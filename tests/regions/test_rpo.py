"""The RPO model of regions.rpo against closed forms and a seeded Monte Carlo of the
same loss process (writes arriving as a Poisson stream, each with its own mirror delay
and run time, a loss at a random instant)."""

from __future__ import annotations

import random

import pytest
from homeport.regions.rpo import MirrorDelay, poisson_bound, predict


def test_tasks_that_never_finish_are_exposed_for_the_whole_mean_delay() -> None:
    delay = MirrorDelay(0.050, 0.010, (0.002, 0.004))
    p = predict(100.0, delay, None)
    # E[min(D, ∞)] = E[D] = 50 ms + 0 (jitter is symmetric) + mean base 3 ms.
    assert p.exposed_s == pytest.approx(0.053, abs=1e-4)
    assert p.expected_lost == pytest.approx(5.3, abs=0.01)
    assert p.window_s == pytest.approx(0.064)


def test_tasks_that_finish_before_the_mirror_has_them_shrink_the_exposure() -> None:
    delay = MirrorDelay(0.050, 0.0, (0.0,))
    assert predict(10.0, delay, [0.020] * 10).exposed_s == pytest.approx(0.020, abs=1e-3)
    assert predict(10.0, delay, [0.200] * 10).exposed_s == pytest.approx(0.050, abs=1e-3)
    # Half finish in 10 ms, half run past the delay: 0.5 * 10 + 0.5 * 50 ms.
    half = predict(10.0, delay, [0.010] * 5 + [1.0] * 5)
    assert half.exposed_s == pytest.approx(0.030, abs=1e-3)


def test_prediction_matches_a_monte_carlo_of_the_loss_process() -> None:
    rng = random.Random(7)
    delay = MirrorDelay(0.050, 0.020, (0.001, 0.003, 0.010))
    runs = [rng.expovariate(1 / 0.040) for _ in range(400)]
    rate = 200.0
    p = predict(rate, delay, runs)
    trials, lost = 3000, 0
    for _ in range(trials):
        t = 0.0
        while True:  # writes in the second before the loss at t = 1
            t += rng.expovariate(rate)
            if t >= 1.0:
                break
            d = delay.latency_s + rng.uniform(-delay.jitter_s, delay.jitter_s)
            d += rng.choice(delay.base_s)
            if 1.0 - t < d and 1.0 - t < rng.choice(runs):
                lost += 1
    assert lost / trials == pytest.approx(p.expected_lost, rel=0.05)


def test_a_link_that_outlives_the_home_exposes_the_base_delay_only() -> None:
    delay = MirrorDelay(0.050, 0.010, (0.002, 0.004), in_flight_lost=False)
    p = predict(100.0, delay, None)
    assert p.window_s == pytest.approx(0.004)
    assert p.exposed_s == pytest.approx(0.003, abs=1e-4)
    # A link that died 20 ms before the primary adds every write of those 20 ms.
    cut = predict(100.0, MirrorDelay(0.050, 0.0, (0.002,)), None, lead_s=0.020)
    assert cut.window_s == pytest.approx(0.072) and cut.exposed_s == pytest.approx(0.072, abs=1e-3)


def test_poisson_bound_is_the_quantile() -> None:
    assert poisson_bound(0.0) == 0
    assert poisson_bound(1.0, 0.5) == 1  # P(N<=0) = 0.37, P(N<=1) = 0.74
    assert poisson_bound(2.0) == 8  # P(N<=7) = 0.9989, P(N<=8) = 0.9998


def test_bad_delays_are_refused_naming_the_values() -> None:
    with pytest.raises(ValueError, match="jitter_s=0.06 is larger than latency_s=0.05"):
        MirrorDelay(0.05, 0.06, (0.0,))
    with pytest.raises(ValueError, match="at least one sample"):
        MirrorDelay(0.05, 0.0, ())
    with pytest.raises(ValueError, match="rate_per_s=-1"):
        predict(-1.0, MirrorDelay(0.05, 0.0, (0.0,)), None)
