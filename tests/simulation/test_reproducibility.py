"""A seed reproduces a run exactly, whatever the model's features."""

from __future__ import annotations

import numpy as np
from homeport.core.partitioner import partition_of
from homeport.simulation.keys import partition_table
from homeport.simulation.model import simulate
from homeport.simulation.params import KeySpace, ModelParams, load_params


def busy_model(seed: int) -> ModelParams:
    """Every source of randomness at once: bursty arrivals, lognormal service, a hot key,
    failures with jittered backoff, and a failover."""
    mmpp = {"kind": "mmpp", "rates_per_s": [300, 1500], "mean_sojourn_s": [2.0, 0.5]}
    return load_params(
        {
            "service_time": {"kind": "lognormal", "median_s": 0.004, "sigma": 0.8},
            "regions": [
                {"name": "a", "arrivals": mmpp, "workers": 4, "concurrency": 4, "standby": "b"},
                {
                    "name": "b",
                    "arrivals": {"kind": "poisson", "rate_per_s": 500},
                    "workers": 6,
                    "concurrency": 4,
                },
            ],
            "keys": {"count": 1000, "zipf_s": 0.8, "hot_key_share": 0.02},
            "retries": {"failure_probability": 0.05, "max_attempts": 4},
            "failover": {"region": "a", "at_s": 3.0, "promotion_delay_s": 1.0},
            "duration_s": 8.0,
            "sample_interval_s": 0.1,
            "seed": seed,
        }
    )


def _fingerprint(seed: int) -> tuple[np.ndarray, ...]:
    record = simulate(busy_model(seed))
    return (
        record.arrival,
        record.start,
        record.finish,
        record.key,
        record.home,
        np.asarray(record.sample_waiting),
        np.asarray([record.retries, record.duplicates]),
    )


def test_same_seed_reproduces_every_event() -> None:
    first, second = _fingerprint(42), _fingerprint(42)
    for left, right in zip(first, second, strict=True):
        np.testing.assert_array_equal(left, right)
    assert len(first[0]) > 5_000


def test_different_seeds_give_different_runs() -> None:
    first, other = _fingerprint(42), _fingerprint(43)
    assert len(first[0]) != len(other[0]) or not np.array_equal(first[1], other[1])


def test_model_partitions_keys_with_the_real_partitioner() -> None:
    space = KeySpace(count=5000)
    table = partition_table(space, 16)
    assert [int(p) for p in table[:50]] == [partition_of(f"lt-{k + 1}", 16) for k in range(50)]
    # Hashing is not `key mod P`: the model would otherwise spread keys perfectly evenly.
    assert any(int(table[k]) != k % 16 for k in range(50))
    shares = [int((table == p).sum()) for p in range(16)]
    assert max(shares) > min(shares)
