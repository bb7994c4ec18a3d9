"""The checker can fail: small hand-built histories, one per kind of violation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from homeport.chaos.checker import check
from homeport.chaos.history import Execution, FaultRecord, History, LagSample, Op, read_history

T0 = 1_800_000_000.0
SPEC: dict[str, Any] = {"invariants": {"max_duplicates": 0}, "slos": {"p99_ms": 50}}


def _clean() -> History:
    """Two keys, three tasks each, sent one after another, each run once, in order."""
    h = History(meta={"t0": T0})
    for k in ("a", "b"):
        for i in range(3):
            sent = T0 + i
            h.ops.append(Op(f"{k}{i}", k, "GLOBAL", sent, home="us-east", acked=sent + 0.002))
            h.execs.append(Execution(f"{k}{i}", sent + 0.01, sent + 0.02, worker="w1"))
    return h


def test_clean_history_passes() -> None:
    verdict = check(_clean(), SPEC)
    assert verdict.ok, verdict.violations
    assert (verdict.acknowledged, verdict.duplicates, verdict.lost) == (6, 0, [])
    assert verdict.p99_ms is not None and verdict.p99_ms < 3


def test_acknowledged_but_never_run_is_lost() -> None:
    h = _clean()
    h.execs = [e for e in h.execs if e.task_id != "a1"]
    verdict = check(h, SPEC)
    assert not verdict.ok
    assert [x.id for x in verdict.lost] == ["a1"]
    assert verdict.lost_by_level() == {"GLOBAL": {"lost": 1, "within_rpo": 0}}
    assert "lost GLOBAL task a1" in verdict.violations[0]


def test_unacknowledged_task_that_never_ran_is_not_lost() -> None:
    h = _clean()
    h.ops.append(Op("x", "a", "GLOBAL", T0 + 5, error="UNAVAILABLE", error_at=T0 + 6))
    verdict = check(h, SPEC)
    assert verdict.ok and verdict.errors == 1


def test_local_loss_inside_region_loss_rpo_is_reported_not_violation() -> None:
    h = _clean()
    h.ops.append(Op("l1", "c", "LOCAL", T0 + 9.7, home="us-east", acked=T0 + 9.8))
    h.ops.append(Op("g1", "c", "GLOBAL", T0 + 9.7, home="us-east", acked=T0 + 9.8))
    h.lags.append(LagSample(T0 + 9.5, "us-east", 0.4))
    h.faults.append(FaultRecord("lose_region", 0, T0 + 10, None, ["us-east"]))
    verdict = check(h, SPEC)
    by_id = {x.id: x for x in verdict.lost}
    assert by_id["l1"].within_rpo and not by_id["g1"].within_rpo
    assert [v for v in verdict.violations if "lost" in v] == [
        v for v in verdict.violations if "g1" in v
    ], "a GLOBAL loss is always a violation; the LOCAL one is within the RPO"


def test_local_loss_far_outside_rpo_is_a_violation() -> None:
    h = _clean()
    h.ops.append(Op("l1", "c", "LOCAL", T0 + 2, home="us-east", acked=T0 + 2.001))
    h.lags.append(LagSample(T0 + 9.5, "us-east", 0.2))
    h.faults.append(FaultRecord("lose_region", 0, T0 + 10, None, ["us-east"]))
    verdict = check(h, SPEC)
    assert any("lost LOCAL task l1" in v for v in verdict.violations)


def test_duplicate_execution_is_counted_and_bounded() -> None:
    h = _clean()
    h.execs.append(Execution("b2", T0 + 2.5, T0 + 2.6, attempt=2, worker="w2"))
    verdict = check(h, SPEC)
    assert (verdict.duplicates, verdict.duplicated_tasks) == (1, 1)
    assert not verdict.ok and "1 duplicate executions" in verdict.violations[0]
    assert check(h, {"invariants": {"max_duplicates": -1}}).ok, "unbounded: only reported"


def test_second_task_of_a_key_started_first_is_an_order_violation() -> None:
    h = _clean()
    swap = {e.task_id: e for e in h.execs}
    swap["a1"].start, swap["a1"].end = T0 + 0.005, T0 + 0.006  # a1 runs before a0 started
    verdict = check(h, SPEC)
    assert [(v.key, v.first, v.second) for v in verdict.order_violations] == [("a", "a0", "a1")]
    assert not verdict.ok


def test_start_before_previous_finished_is_an_order_violation() -> None:
    h = _clean()
    runs = {e.task_id: e for e in h.execs}
    runs["b0"].end = T0 + 1.5  # b0 still running when b1 starts at T0 + 1.01
    verdict = check(h, SPEC)
    assert [v.second for v in verdict.order_violations] == ["b1"]
    assert "before the first finished" in verdict.order_violations[0].detail


def test_concurrent_submits_of_one_key_promise_no_order() -> None:
    h = _clean()
    h.ops.append(Op("a9", "a", "LOCAL", T0 + 2.0005, acked=T0 + 2.003))  # before a2's ack
    h.execs.append(Execution("a9", T0 + 2.001, T0 + 2.002))
    assert check(h, SPEC).order_violations == []


def test_slow_acknowledgements_miss_the_latency_slo() -> None:
    h = _clean()
    for op in h.ops[:2]:
        op.acked = op.sent + 0.2
    verdict = check(h, SPEC)
    assert not verdict.ok
    assert verdict.p99_ms is not None and verdict.p99_ms > 50
    assert any(v.startswith("SLO p99_ms") for v in verdict.violations)


def test_latency_inside_fault_windows_is_excluded_unless_asked() -> None:
    h = _clean()
    h.ops[0].acked = h.ops[0].sent + 0.2
    h.faults.append(FaultRecord("latency", 0, T0 - 0.1, T0 + 0.5, ["x->y:redis"]))
    assert check(h, SPEC).ok
    assert not check(h, {**SPEC, "slos": {"p99_ms": 50, "during_faults": True}}).ok


def test_recovery_time_is_measured_from_the_fault_start() -> None:
    h = History(meta={"t0": T0})
    for i in range(40):
        sent = T0 + i * 0.1
        failed = 1.0 <= sent - T0 < 2.5
        h.ops.append(Op(f"t{i}", f"k{i}", "GLOBAL", sent, acked=None if failed else sent + 0.001))
        if not failed:
            h.execs.append(Execution(f"t{i}", sent + 0.01, sent + 0.02))
    h.faults.append(FaultRecord("kill", 0, T0 + 1.0, T0 + 1.2, ["gateway-us-east"]))
    verdict = check(h, {"slos": {"max_rto_s": 1.0}})
    assert verdict.rto_s is not None and 1.45 < verdict.rto_s < 1.65
    assert any("max_rto_s" in v for v in verdict.violations)


def test_a_later_steps_failures_are_not_charged_to_the_fault_before_it() -> None:
    def history(failing: set[int]) -> History:
        h = History(meta={"t0": T0})
        for i in range(60):  # 6 s of submits, one per 100 ms
            sent = T0 + i * 0.1
            failed = i in failing
            h.ops.append(Op(f"t{i}", "k", "LOCAL", sent, acked=None if failed else sent + 0.001))
            if not failed:
                h.execs.append(Execution(f"t{i}", sent + 0.01, sent + 0.02))
        h.faults.append(FaultRecord("isolate", 0, T0 + 1.0, T0 + 2.0, ["client->a:gateway"]))
        h.faults.append(FaultRecord("failback", 1, T0 + 4.0, T0 + 4.0, [], disruptive=False))
        return h

    isolation, switch = set(range(10, 15)), set(range(40, 43))  # 1.0-1.4 s, 4.0-4.2 s
    verdict = check(history(isolation | switch), {"slos": {"max_rto_s": 1.0}})
    assert verdict.rto_s is not None and 0.45 < verdict.rto_s < 0.55, verdict.rto_s
    assert verdict.ok, verdict.violations
    # Still failing when the failback starts: not recovered in its window, so judged on
    # everything after it, up to the end of the failback's switch.
    verdict = check(history(set(range(10, 43))), {"slos": {"max_rto_s": 1.0}})
    assert verdict.rto_s is not None and 3.25 < verdict.rto_s < 3.35, verdict.rto_s
    assert not verdict.ok


def test_a_planned_switch_is_timed_and_a_failure_counts_when_it_happened() -> None:
    h = History(meta={"t0": T0})
    for i in range(60):  # 6 s of submits, one per 100 ms; a failback at 3 s
        sent = T0 + i * 0.1
        op = Op(f"t{i}", "k", "LOCAL", sent, acked=sent + 0.001)
        if i in (28, 29):  # sent before the failback, retried into it, refused after it
            op.acked, op.error, op.error_at = None, "FencedError: epoch 2 < 3", T0 + 3.05
        if i in (30, 31, 32):
            op.acked, op.error, op.error_at = None, "TransientError: switching", sent + 0.01
        h.ops.append(op)
        if op.acked is not None:
            h.execs.append(Execution(f"t{i}", sent + 0.01, sent + 0.02))
    h.faults.append(FaultRecord("promote", 0, T0 + 1.0, T0 + 1.0, [], disruptive=False))
    h.faults.append(FaultRecord("failback", 1, T0 + 3.0, T0 + 3.0, [], disruptive=False))
    verdict = check(h, {"slos": {"max_switch_s": 0.5}})
    assert verdict.rto_s is None, "no disruptive step"
    assert verdict.switch_s is not None and 0.25 < verdict.switch_s < 0.35, verdict.switch_s
    assert verdict.ok, verdict.violations
    assert not check(h, {"slos": {"max_switch_s": 0.2}}).ok


def test_not_replicated_refusals_are_not_an_outage() -> None:
    h = History(meta={"t0": T0})
    for i in range(40):
        sent = T0 + i * 0.1
        refused = i % 2 == 0 and sent - T0 >= 1.0  # GLOBAL refused to the end of the run
        op = Op(f"t{i}", f"k{i}", "GLOBAL" if i % 2 == 0 else "LOCAL", sent)
        if refused:
            op.error, op.error_at = "NotReplicatedError: UNAVAILABLE: write reached 0", sent
        else:
            op.acked = sent + 0.001
            h.execs.append(Execution(f"t{i}", sent + 0.01, sent + 0.02))
        h.ops.append(op)
    h.faults.append(FaultRecord("link_down", 0, T0 + 1.0, T0 + 3.9, ["eu-west->us-east:redis"]))
    verdict = check(h, {"slos": {"max_rto_s": 1.0}})
    assert verdict.errors == 15, "the refusals really are in the history"
    assert verdict.rto_s == 0.0 and verdict.ok, verdict.violations
    h.ops[-1].error, h.ops[-1].acked = "TransientError: UNAVAILABLE: gateway down", None
    assert check(h, {"slos": {"max_rto_s": 1.0}}).rto_s == float("inf"), "other errors count"


def _region_loss(refused_for: float, then: str = "NotReplicatedError: write reached 1") -> History:
    """us-east lost at 10 s; GLOBAL submits of us-east and ap-south (whose mirror was
    there) refused for `refused_for` seconds from the loss, eu-west's never."""
    h = History(meta={"t0": T0})
    for i in range(900):  # 90 s, one GLOBAL submit per 100 ms, the homes in turn
        sent = T0 + i * 0.1
        home = ("us-east", "ap-south", "eu-west")[i % 3]
        op = Op(f"t{i}", f"k{i % 30}", "GLOBAL", sent, home=home)
        if home != "eu-west" and 10 <= sent - T0 < 10 + refused_for:
            op.error, op.error_at = then, sent + 0.05
        else:
            op.acked = sent + 0.002
            h.execs.append(Execution(op.id, sent + 0.01, sent + 0.02, region="eu-west"))
        h.ops.append(op)
    h.faults.append(FaultRecord("lose_region", 0, T0 + 10, None, ["us-east"]))
    return h


def test_global_acknowledged_again_soon_after_a_region_loss_meets_the_reprotect_slo() -> None:
    verdict = check(_region_loss(6.0), {"slos": {"max_reprotect_s": 60}})
    assert verdict.ok, verdict.violations
    back = verdict.global_back_s
    # One GLOBAL submit of each home every 0.3 s: back within that of the refusals end.
    assert 5.9 < back["us-east"] < 6.35 and 5.9 < back["ap-south"] < 6.35, back
    assert back["eu-west"] == 0.0, "nothing refused: back at once"


def test_global_refused_too_long_after_a_region_loss_misses_the_reprotect_slo() -> None:
    verdict = check(_region_loss(65.0), {"slos": {"max_reprotect_s": 60}})
    assert not verdict.ok
    missed = [v for v in verdict.violations if "max_reprotect_s" in v]
    assert len(missed) == 2 and any("ap-south" in v for v in missed), missed
    assert verdict.global_back_s["eu-west"] == 0.0
    never = check(_region_loss(80.0), {"slos": {"max_reprotect_s": 60}})
    assert never.global_back_s["us-east"] == float("inf"), "refused to the end: never back"
    other = check(_region_loss(65.0, "TransientError: gateway down"), {"slos": {}})
    assert other.global_back_s["ap-south"] > 60, "any failure of a GLOBAL submit counts"


def test_history_round_trips_through_jsonl(tmp_path: Path) -> None:
    h = _clean()
    h.faults.append(FaultRecord("latency", 0, T0, T0 + 1, ["a->b:redis"], "latency 100"))
    h.lags.append(LagSample(T0, "us-east", 0.01, 10, True))
    path = tmp_path / "history.jsonl"
    h.write(path)
    again = read_history(path)
    assert again == h
