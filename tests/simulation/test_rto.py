"""The RTO model (simulation.rto) against hand-computed cases, and its CLI."""

from __future__ import annotations

import json
import random

import pytest
from click.testing import CliRunner
from homeport.simulation.cli import plan
from homeport.simulation.rto import RtoParams, one_rto, predict, route_moved

EXACT = {"probe_interval_s": 1e-9, "controller_interval_s": 1e-9, "pickup_s": 0.0}


def test_the_route_moves_after_detection_confirmation_and_promotion() -> None:
    p = RtoParams(probe_fail_s=0.01, confirm_s=3.0, promotion_s=(0.2,), **EXACT)
    assert route_moved(p, random.Random(1)) == pytest.approx(3.21, abs=1e-6)


def test_the_quorum_waits_for_the_slowest_vote_it_needs() -> None:
    """Three regions: both other observers must vote, so the later phase counts; the
    mean of the larger of two uniforms on [0, 1) is 2/3."""
    p = RtoParams(probe_interval_s=1.0, probe_fail_s=0.0, confirm_s=0.0, promotion_s=(0.0,),
                  controller_interval_s=1e-9, pickup_s=0.0)  # fmt: skip
    rng = random.Random(3)
    mean = sum(route_moved(p, rng) for _ in range(4000)) / 4000
    assert mean == pytest.approx(2 / 3, abs=0.02)
    # Five regions: 3 votes of the 4 others, the third smallest of four: mean 3/5.
    five = RtoParams(**{**p.__dict__, "regions": 5})
    mean5 = sum(route_moved(five, rng) for _ in range(4000)) / 4000
    assert mean5 == pytest.approx(3 / 5, abs=0.02)


def test_a_lost_controller_leader_holds_the_judgement_until_its_lease_lapses() -> None:
    base = {**EXACT, "confirm_s": 0.5, "promotion_s": (0.0,), "probe_fail_s": 0.0}
    led = RtoParams(leader_lost_p=1.0, **base)
    moved = [route_moved(led, random.Random(s)) for s in range(200)]
    assert min(moved) >= 3.0 - 0.75 and max(moved) <= 3.0 + 1e-6
    assert route_moved(RtoParams(fault="primary", leader_lost_p=1.0, **base), random.Random(0)) == (
        pytest.approx(0.5, abs=1e-6)
    ), "a killed primary takes no controller with it"


def test_the_rto_is_the_first_send_after_the_last_failed_submit_near_the_route_move() -> None:
    p = RtoParams(confirm_s=3.0, promotion_s=(0.2,), rate_per_s=200.0, home_share=1.0, **EXACT)
    rng = random.Random(5)
    for _ in range(50):
        state = rng.getstate()
        moved = route_moved(p, rng)
        rng.setstate(state)
        rto = one_rto(p, rng)
        # The last submit to fail refreshed its routes just before the move; it then
        # slept at most one backoff and failed once more.
        assert moved - 0.25 < rto < moved + 0.2


def test_distribution_is_reproducible_and_ordered() -> None:
    a, b = predict(RtoParams(), 300, seed=9), predict(RtoParams(), 300, seed=9)
    assert a.samples == b.samples
    s = a.summary()
    assert s["p05_s"] <= s["p50_s"] <= s["p95_s"] and 3.0 < s["p50_s"] < 4.0


def test_bad_parameters_are_refused_naming_them() -> None:
    with pytest.raises(ValueError, match="leader_lost_p=1.5 is out of range"):
        RtoParams(leader_lost_p=1.5)
    with pytest.raises(ValueError, match=r"promotion_s=\(\) is out of range"):
        RtoParams(promotion_s=())


def test_cli_compares_the_measured_median_with_the_prediction() -> None:
    out = CliRunner().invoke(
        plan, ["rto", "--runs", "300", "--measured", "3.0", "--measured", "3.4", "--json"]
    )
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["measured_p50_s"] == pytest.approx(3.2)
    assert data["ratio"] == pytest.approx(3.2 / data["p50_s"])
    assert data["within_20_percent"] is (abs(3.2 - data["p50_s"]) <= 0.2 * data["p50_s"])
    bad = CliRunner().invoke(plan, ["rto", "--promotion", "fast"])
    assert bad.exit_code == 2 and "promotion" in bad.output


def test_cli_rpo_prints_the_window_and_refuses_a_jitter_above_the_latency() -> None:
    out = CliRunner().invoke(
        plan, ["rpo", "--latency", "50ms", "--base", "10ms", "--rate", "40", "--json"]
    )
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["window_s"] == pytest.approx(0.060) and data["expected_lost"] == pytest.approx(2.4)
    bad = CliRunner().invoke(plan, ["rpo", "--latency", "5ms", "--jitter", "10ms", "--rate", "1"])
    assert bad.exit_code == 2 and "jitter_s=0.01 is larger than latency_s=0.005" in bad.output
