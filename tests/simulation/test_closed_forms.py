"""The model against closed-form queueing results: M/M/1 and M/M/c (Erlang C).

Each check runs independent replications and asks that the analytic value lie inside the
99% Student-t interval of the replication means. Runs are seeded, so the outcome is
deterministic; the tolerance is the honest statistical one, not a hand-picked margin.
"""

from __future__ import annotations

import numpy as np
import pytest
from homeport.simulation.params import ModelParams, load_params
from homeport.simulation.queueing import MMc, erlang_b
from homeport.simulation.replications import replicate
from homeport.simulation.results import RunRecord, littles_law


def single_queue(rate: float, servers: int, tasks: int, seed: int = 11) -> ModelParams:
    """One region, one worker owning one partition with `servers` slots: plain M/M/c
    (keys spread over a million, so per-key order almost never bites)."""
    return load_params(
        {
            "service_time": {"kind": "exponential", "mean_s": 1.0},
            "regions": [
                {
                    "name": "r",
                    "arrivals": {"kind": "poisson", "rate_per_s": rate},
                    "workers": 1,
                    "concurrency": servers,
                    "partitions": 1,
                }
            ],
            "keys": {"count": 1_000_000},
            "max_tasks": tasks,
            "seed": seed,
        }
    )


def _steady(record: RunRecord) -> np.ndarray:
    mask = record.steady_mask(0.1)
    return (record.start - record.arrival)[mask]


METRICS = {
    "mean_wait": lambda r: float(np.mean(_steady(r))),
    "p_wait": lambda r: float(np.mean(_steady(r) > 0)),
}


@pytest.mark.parametrize(("rate", "servers"), [(0.7, 1), (3.2, 4), (12.0, 16)])
def test_mean_wait_and_p_wait_match_erlang_c(rate: float, servers: int) -> None:
    analytic = MMc(rate, 1.0, servers)
    found = replicate(single_queue(rate, servers, 30_000), 8, METRICS)
    assert analytic.mean_wait_s in found["mean_wait"], (analytic.mean_wait_s, found)
    assert analytic.p_wait in found["p_wait"], (analytic.p_wait, found)
    # the interval must be tight enough to mean something: mean within about ±25%
    assert found["mean_wait"].high - found["mean_wait"].low < 0.5 * analytic.mean_wait_s


def test_mm1_mean_wait_is_rho_over_mu_minus_lambda() -> None:
    rho = 0.7
    found = replicate(single_queue(rho, 1, 30_000, seed=99), 8, METRICS)
    assert rho / (1.0 - rho) in found["mean_wait"]
    assert rho in found["p_wait"]  # PASTA: an arrival finds the server busy w.p. rho


def test_littles_law_holds_for_the_waiting_line() -> None:
    from homeport.simulation.model import simulate

    record = simulate(single_queue(3.2, 4, 50_000))
    law = littles_law(record, record.steady_mask(0.1))
    assert law.relative_error < 0.01, law
    assert law.arrival_rate == pytest.approx(3.2, rel=0.03)


def test_erlang_b_recurrence_is_stable_for_large_pools() -> None:
    # 2000 servers at 95% load: the factorial form overflows, the recurrence does not
    assert 0.0 <= erlang_b(2000, 1900.0) < 1.0
    queue = MMc(1900.0, 1.0, 2000)
    assert 0.0 < queue.p_wait < 1.0
    assert queue.wait_quantile_s(0.99) >= 0.0
