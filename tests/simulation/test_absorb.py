"""The controller's capacity model (`simulation.absorb`): Erlang C on the busiest worker,
the planner's worker count, and no test-lab import (a plain install runs it)."""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import replace

import pytest
from homeport.regions.capacity import AbsorbQuestion
from homeport.simulation.absorb import answer, busiest_backlog
from homeport.simulation.queueing import MMc

# Expected largest of 2 and of 4 independent standard normals: the busiest worker's
# excess share of a backlog (simulation.absorb, "busiest_backlog").
E2, E4 = 0.5641896, 1.0293754

BASE = AbsorbQuestion(
    home="us-east",
    standby="eu-west",
    rate_per_s=100.0,
    hold_mean_s=0.05,
    workers=4,
    concurrency=4,
    partitions=16,
    outage_s=5.0,
    p99_wait_target_s=0.5,
    max_drain_s=60.0,
    max_workers=8,
)


def test_a_roomy_standby_is_ok_with_erlang_c_on_the_busiest_worker() -> None:
    got = answer(BASE)
    # 16 partitions over 4 workers: each owns 4, a quarter of the rate.
    worker = MMc(25.0, 0.05, 4)
    assert got.ok and got.reason == "ok" and got.workers_needed == 4
    assert math.isclose(got.utilisation, worker.utilisation)
    assert math.isclose(got.p99_wait_s, worker.wait_quantile_s(0.99))
    # Backlog 100/s * 5 s, a quarter on the busiest worker and its expected excess
    # (E4 * sqrt(125)), drained at 80 - 25 tasks/s.
    assert got.drain_s == pytest.approx((125.0 + E4 * math.sqrt(125.0)) / (80.0 - 25.0))


def test_partition_spread_decides_the_busiest_worker() -> None:
    # 16 partitions over 3 workers: one owns 6 (37.5% of the rate), not a third.
    got = answer(replace(BASE, workers=3, rate_per_s=150.0))
    assert math.isclose(got.utilisation, 150.0 * 6 / 16 * 0.05 / 4)


def test_an_overloaded_standby_gets_the_smallest_worker_count_that_passes() -> None:
    q = replace(BASE, workers=1, rate_per_s=120.0)  # one worker: 80 tasks/s at most
    got = answer(q)
    assert not got.ok and got.reason.startswith("overloaded")
    assert got.workers_needed > 1
    assert answer(replace(q, workers=got.workers_needed)).ok
    assert not answer(replace(q, workers=got.workers_needed - 1)).ok
    assert got.after_p99_wait_s <= q.p99_wait_target_s
    assert got.after_drain_s <= q.max_drain_s


def test_a_slow_drain_alone_makes_the_standby_undersized() -> None:
    q = replace(BASE, workers=2, rate_per_s=100.0, outage_s=600.0, max_drain_s=20.0)
    got = answer(q)
    assert not got.ok and "to drain" in got.reason
    assert got.utilisation < 1.0


def test_the_topology_limit_caps_the_scale_up_and_says_so() -> None:
    got = answer(replace(BASE, workers=1, rate_per_s=300.0, max_workers=3))
    assert not got.ok and got.workers_needed == 3
    assert "even 3 workers (the limit) fall short" in got.reason


def test_the_check_imports_no_test_lab_package() -> None:
    code = (
        "import sys, homeport.simulation.absorb\n"
        "print(sorted(m for m in ('numpy', 'simpy', 'scipy', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_no_more_workers_than_partitions_are_ordered() -> None:
    got = answer(replace(BASE, partitions=4, workers=1, rate_per_s=400.0, max_workers=8))
    assert not got.ok and got.workers_needed == 4
    assert "even 4 workers (one per partition) fall short" in got.reason


def test_added_workers_drain_only_after_the_scale_delay() -> None:
    """1 worker of 2 slots at 100 ms (20/s) for 4 partitions, 12/s, 5 s outage: 60
    tasks of backlog. Alone it clears 8/s (7.5 s). With 2 workers (the busiest owns 2 of
    4 partitions: 40/s - 12 = 28/s net) at once: 60 / 28 s for an even split, plus the
    busier one's expected excess (30 + E2 sqrt(30) of them: 60 + E2 sqrt(120) in the
    group's terms); after a 3 s delay: 3 s at 8/s, then the remaining 36 likewise."""
    q = replace(BASE, rate_per_s=12.0, hold_mean_s=0.1, workers=1, concurrency=2,
                partitions=4, outage_s=5.0, p99_wait_target_s=5.0, max_drain_s=5.0,
                max_workers=4)  # fmt: skip
    at_once = answer(replace(q, scale_delay_s=0.0))
    assert not at_once.ok and at_once.drain_s == pytest.approx(7.5)
    assert at_once.workers_needed == 2
    assert at_once.after_drain_s == pytest.approx((60 + E2 * math.sqrt(120)) / 28)
    delayed = answer(replace(q, scale_delay_s=3.0))
    assert delayed.workers_needed == 2
    assert delayed.after_drain_s == pytest.approx(3.0 + (36 + E2 * math.sqrt(72)) / 28)
    # A delay longer than the drain alone: the added workers come too late to help.
    late = answer(replace(q, scale_delay_s=10.0))
    assert late.after_drain_s == pytest.approx(7.5) and late.workers_needed == 4


def test_prepared_workers_count_only_their_go_delay_and_only_up_to_their_number() -> None:
    """The same standby with a 3 s boot: added workers within its prepared ones serve
    after the 0.5 s prepared delay (0.5 s at 8/s, then 56 at 28/s); an order beyond
    them waits for the boot, as without any."""
    q = replace(BASE, rate_per_s=12.0, hold_mean_s=0.1, workers=1, concurrency=2,
                partitions=4, outage_s=5.0, p99_wait_target_s=5.0, max_drain_s=5.0,
                max_workers=4, scale_delay_s=3.0, prepared_delay_s=0.5)  # fmt: skip
    prepared = answer(replace(q, prepared_workers=1))
    assert prepared.workers_needed == 2
    assert prepared.after_drain_s == pytest.approx(0.5 + (56 + E2 * math.sqrt(112)) / 28)
    none = answer(replace(q, prepared_workers=0))
    assert none.after_drain_s == pytest.approx(3.0 + (36 + E2 * math.sqrt(72)) / 28)
    # A limit of 3 s on the drain: 2 prepared-speed workers (2.5 s) pass.
    tight = replace(q, max_drain_s=3.0)
    assert answer(replace(tight, prepared_workers=1)).workers_needed == 2
    # Without prepared ones the boot makes even 4 (one per partition) too late.
    capped = answer(replace(tight, prepared_workers=0))
    assert capped.workers_needed == 4 and "fall short" in capped.reason


def test_the_backlog_drains_from_the_clients_return_and_the_scale_up_runs_meanwhile() -> None:
    """The standby above with a 3 s scale-up delay: the clients come back 1 s after the
    route moved on average, so the backlog waits 1 s, and the added worker then serves
    after the delay's remaining 2 s (2 s at 8/s, then the remaining 44 at 28/s)."""
    q = replace(BASE, rate_per_s=12.0, hold_mean_s=0.1, workers=1, concurrency=2,
                partitions=4, outage_s=5.0, p99_wait_target_s=5.0, max_drain_s=60.0,
                max_workers=2, scale_delay_s=3.0, client_return_s=1.0)  # fmt: skip
    assert answer(q).drain_s == pytest.approx(1.0 + 7.5)
    scaled = answer(replace(q, max_drain_s=5.0))
    assert scaled.workers_needed == 2
    assert scaled.after_drain_s == pytest.approx(1.0 + 2.0 + (44 + E2 * math.sqrt(88)) / 28)
    # A return longer than the delay: every worker serves the backlog from its arrival.
    assert answer(replace(q, max_drain_s=5.0, client_return_s=4.0)).after_drain_s == (
        pytest.approx(4.0 + (60 + E2 * math.sqrt(120)) / 28)
    )


@pytest.mark.parametrize(
    ("backlog", "partitions", "workers"), [(45, 4, 2), (82, 4, 2), (200, 16, 4), (30, 8, 3)]
)
def test_the_busiest_workers_backlog_matches_a_hashed_sample(
    backlog: int, partitions: int, workers: int
) -> None:
    """The expected largest share against samples: random keys hashed by the engine's
    partitioner, partitions dealt round-robin over the workers, 4000 backlogs."""
    import random

    from homeport.core.partitioner import partition_of

    rng = random.Random(7)
    owner = [p % workers for p in range(partitions)]
    share = math.ceil(partitions / workers) / partitions
    largest = []
    for _ in range(4000):
        counts = [0] * workers
        for _ in range(backlog):
            counts[owner[partition_of(f"k{rng.getrandbits(40)}", partitions)]] += 1
        largest.append(max(counts))
    sampled = sum(largest) / len(largest)
    # The model in the busiest worker's own tasks: its group-terms backlog times its share.
    predicted = busiest_backlog(backlog, partitions, workers) * share
    assert predicted == pytest.approx(sampled, rel=0.04), (predicted, sampled)
    assert predicted > backlog * share  # the even split would understate it
