"""Execution recovery can fail a scenario: hand-built histories with a stall, a slow
first run after a region loss, and a slow start, next to ones that pass."""

from __future__ import annotations

import math
from typing import Any

from homeport.chaos.checker import check
from homeport.chaos.execution import longest_gap
from homeport.chaos.history import Execution, FaultRecord, History, Op

T0 = 1_800_000_000.0
SLOS: dict[str, Any] = {"slos": {"max_stall_s": 2.0, "max_start_s": 3.0, "max_first_run_s": 5.0}}


def _steady(seconds: int = 20, gap_from: float = math.inf, gap_s: float = 0.0) -> History:
    """A task every 100 ms for `seconds`, each starting 5 ms after its ack; tasks acked in
    [gap_from, gap_from + gap_s) start only when the gap ends (a stall)."""
    h = History(meta={"t0": T0})
    for i in range(seconds * 10):
        sent = T0 + i / 10
        acked = sent + 0.002
        start = acked + 0.005
        if gap_from <= acked - T0 < gap_from + gap_s:
            start = T0 + gap_from + gap_s + i / 1000
        h.ops.append(Op(f"t{i}", f"k{i % 7}", "GLOBAL", sent, home="us-east", acked=acked))
        h.execs.append(Execution(f"t{i}", start, start + 0.01, region="us-east"))
    return h


def test_steady_run_has_no_stall() -> None:
    verdict = check(_steady(), SLOS)
    assert verdict.ok, verdict.violations
    r = verdict.recovery["us-east"]
    assert r.stall_s < 0.1 and r.start_max_ms is not None and r.start_max_ms < 10


def test_stall_fails_the_scenario_and_names_the_home() -> None:
    verdict = check(_steady(gap_from=5.0, gap_s=4.0), SLOS)
    assert not verdict.ok
    r = verdict.recovery["us-east"]
    assert 3.9 < r.stall_s < 4.1, r.stall_s
    assert r.stall_at_s is not None and 4.9 < r.stall_at_s < 5.2
    assert any(v.startswith("SLO max_stall_s: us-east") for v in verdict.violations)
    assert any(v.startswith("SLO max_start_s") for v in verdict.violations)


def test_stall_inside_a_fault_still_counts() -> None:
    h = _steady(gap_from=5.0, gap_s=4.0)
    h.faults.append(FaultRecord("kill", 0, T0 + 5, T0 + 6, ["worker-us-east-0"]))
    verdict = check(h, SLOS)
    assert any(v.startswith("SLO max_stall_s") for v in verdict.violations)


def test_first_run_after_region_loss_is_measured_on_the_standby() -> None:
    h = _steady(seconds=10)
    h.faults.append(FaultRecord("lose_region", 0, T0 + 10, None, ["us-east"]))
    for i in range(5):
        acked = T0 + 9 + i / 10
        h.ops.append(Op(f"g{i}", "k", "GLOBAL", acked - 0.002, home="us-east", acked=acked))
        h.execs.append(Execution(f"g{i}", T0 + 17 + i / 10, T0 + 17.2 + i / 10, region="eu-west"))
    verdict = check(h, SLOS)
    r = verdict.recovery["us-east"]
    assert r.first_run_s == [7.0] or abs(r.first_run_s[0] - 7.0) < 1e-6
    assert any(v.startswith("SLO max_first_run_s") for v in verdict.violations)
    fast = _steady(seconds=10)
    fast.faults.append(FaultRecord("lose_region", 0, T0 + 10, None, ["us-east"]))
    fast.ops.append(Op("g", "k", "GLOBAL", T0 + 9.9, home="us-east", acked=T0 + 9.91))
    fast.execs.append(Execution("g", T0 + 13.5, T0 + 13.6, region="eu-west"))
    assert check(fast, SLOS).recovery["us-east"].first_run_s[0] < 5.0


def test_a_home_that_never_runs_again_after_loss_reports_never() -> None:
    h = _steady(seconds=10)
    h.faults.append(FaultRecord("lose_region", 0, T0 + 10, None, ["us-east"]))
    verdict = check(h, SLOS)
    assert verdict.recovery["us-east"].first_run_s == [math.inf]
    assert not verdict.ok


def test_longest_gap_subtracts_busy_spans() -> None:
    waiting = [(0.0, 10.0)]
    busy = [(1.0, 2.0), (2.5, 3.0), (8.0, 9.0)]
    assert longest_gap(waiting, busy) == (5.0, 3.0)
    assert longest_gap(waiting, [(0.0, 10.0)]) == (0.0, None)
    assert longest_gap([], busy) == (0.0, None)


def test_a_fault_that_did_nothing_fails_the_verdict() -> None:
    h = _steady(seconds=5)
    h.faults.append(
        FaultRecord("kill", 0, T0 + 2, T0 + 3, ["worker-us-east-0"],
                    detail="FAILED: FaultError: kill: none of ['worker-us-east-0'] was running")
    )  # fmt: skip
    verdict = check(h, SLOS)
    assert not verdict.ok
    assert any("fault step 0 (kill) did not apply" in v for v in verdict.violations)


def test_first_run_is_bounded_against_the_submit_rto() -> None:
    h = _steady(seconds=10)
    h.faults.append(FaultRecord("kill", 0, T0 + 10, None, ["redis-us-east-primary"]))
    for i in range(20):  # submits accepted again from t=13 s; they first run at t=19 s
        sent = T0 + 13 + i / 10
        h.ops.append(Op(f"late{i}", "k", "GLOBAL", sent, home="us-east", acked=sent + 0.01))
        h.execs.append(Execution(f"late{i}", T0 + 19 + i / 100, T0 + 19.1 + i / 100,
                                 region="eu-west"))  # fmt: skip
    h.ops.append(Op("x", "k2", "GLOBAL", T0 + 10.5, home="us-east", error="UNAVAILABLE",
                    error_at=T0 + 12.0))  # fmt: skip
    verdict = check(h, {"slos": {"first_run_after_rto_s": 2.0, "max_stall_s": 1.0}})
    assert verdict.rto_s is not None and verdict.recovery["us-east"].first_run_s == [9.0]
    assert any(v.startswith("SLO first_run_after_rto_s") for v in verdict.violations)
    assert not any(v.startswith("SLO max_stall_s") for v in verdict.violations), (
        "the displaced home is judged by its first run, not the stall bound"
    )


def test_an_isolated_region_is_a_displaced_home() -> None:
    from homeport.chaos.execution import displaced

    links = ["client->us-east:gateway", "eu-west->us-east:etcd", "us-east->ap-south:redis"]
    assert displaced("isolate", links) == {"us-east"}
    assert displaced("kill", ["redis-eu-west-primary", "gateway-us-east"]) == {"eu-west"}
    assert displaced("latency", ["us-east->us-east:redis"]) == set()
