"""Per-key serialisation: what a plain M/M/c model misses, and the order it guarantees."""

from __future__ import annotations

import numpy as np
from homeport.simulation.model import simulate
from homeport.simulation.params import ModelParams, load_params
from homeport.simulation.queueing import MMc, mm1_mean_wait_s
from homeport.simulation.replications import replicate
from homeport.simulation.results import RunRecord, key_order

RATE = 8.0
SLOTS = 16
HOT_SHARE = 0.1


def hot_key_region(seed: int = 5, tasks: int = 80_000) -> ModelParams:
    """16 slots at 50% load: Erlang C says almost nobody waits. Key 0 carries 10% of the
    traffic, so on its own it is an M/M/1 queue at 80% load."""
    return load_params(
        {
            "service_time": {"kind": "exponential", "mean_s": 1.0},
            "regions": [
                {
                    "name": "r",
                    "arrivals": {"kind": "poisson", "rate_per_s": RATE},
                    "workers": 1,
                    "concurrency": SLOTS,
                    "partitions": 1,
                }
            ],
            "keys": {"count": 100_000, "hot_key_share": HOT_SHARE},
            "max_tasks": tasks,
            "seed": seed,
        }
    )


def _waits(record: RunRecord, hot: bool | None = None) -> np.ndarray:
    mask = record.steady_mask(0.1)
    if hot is not None:
        mask &= (record.key == 0) == hot
    return (record.start - record.arrival)[mask]


def test_hot_key_waits_like_its_own_mm1_queue_which_erlang_c_misses() -> None:
    hot_rate = RATE * (HOT_SHARE + (1 - HOT_SHARE) / 100_000)
    bound = mm1_mean_wait_s(hot_rate, 1.0)  # a lower bound: slots can only add waiting
    pooled = MMc(RATE, 1.0, SLOTS).mean_wait_s
    found = replicate(
        hot_key_region(),
        6,
        {
            "hot": lambda r: float(np.mean(_waits(r, hot=True))),
            "all": lambda r: float(np.mean(_waits(r))),
            "cold": lambda r: float(np.mean(_waits(r, hot=False))),
        },
    )
    assert found["hot"].high >= bound, (bound, found["hot"])  # never below the bound
    assert found["hot"].mean < 1.3 * bound  # and close to it when slots are plentiful
    # plain M/M/c predicts ~1ms; the hot key alone lifts the mean wait by two orders
    assert pooled < 0.01
    assert found["all"].low > 30 * pooled
    # cold keys see roughly what Erlang C promises
    assert found["cold"].mean < 10 * pooled + 0.01


def test_successors_wait_for_their_key_and_start_in_order() -> None:
    order = key_order(simulate(hot_key_region(tasks=20_000)))
    assert order.violations == 0
    assert order.pairs > 1_000  # the hot key really contended


def test_retries_hold_the_key_through_backoff() -> None:
    params = load_params(
        {
            "service_time": {"kind": "lognormal", "median_s": 0.01, "sigma": 0.5},
            "regions": [
                {
                    "name": "r",
                    "arrivals": {"kind": "poisson", "rate_per_s": 200},
                    "workers": 4,
                    "concurrency": 2,
                    "partitions": 8,
                }
            ],
            "keys": {"count": 50},
            "retries": {"failure_probability": 0.2, "max_attempts": 3, "backoff_base_s": 0.05},
            "max_tasks": 20_000,
            "seed": 3,
        }
    )
    record = simulate(params)
    assert record.tasks == record.arrived == 20_000
    assert key_order(record).violations == 0
    # E[retries per task] = p + p^2 with 3 attempts; dead-lettered share = p^3
    assert abs(record.retries / record.tasks - 0.24) < 0.02
    assert abs(record.dead.mean() - 0.008) < 0.003
