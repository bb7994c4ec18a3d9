"""The undersized-standby judge (chaos.drain) can fail: a hand-built history of a
promotion the capacity check found undersized, its backlog run in the standby."""

from __future__ import annotations

import json
from typing import Any

from homeport.chaos.checker import check
from homeport.chaos.drain import drains
from homeport.chaos.history import Event, Execution, FaultRecord, History, Op

T0 = 1_800_000_000.0
MOVED = T0 + 34.0
SLOS: dict[str, Any] = {"slos": {"drain_tolerance": 0.25, "drain_wait_s": 1.0}}


def _history(
    verdict: str = "undersized", drain_s: float = 3.0, workers: int = 2, stall_at: float = 0.0
) -> History:
    """us-east lost at 30 s, promoted to eu-west (route moved at 34 s); 40 backlog tasks
    acked at 34 s start one every `drain_s`/40 s on `workers` pids, then 20 fresh tasks
    start at once; with `stall_at`, one more task acked then starts 3 s late."""
    h = History(meta={"t0": T0})
    h.faults.append(FaultRecord("lose_region", 0, T0 + 30, None, ["us-east"]))
    capacity = {"verdict": verdict, "workers": 1, "workers_ordered": 2, "after_drain_s": 3.0}
    record = {"kind": "promote", "home": "us-east", "to": "eu-west", "capacity": capacity}
    h.events.append(Event(MOVED, "failover", "us-east", json.dumps(record)))
    for i in range(40):
        h.ops.append(Op(f"b{i}", f"k{i}", "LOCAL", MOVED - 5, "us-east", acked=MOVED))
        start = MOVED + (i + 1) * drain_s / 40
        h.execs.append(Execution(f"b{i}", start, start + 0.1, region="eu-west",
                                 worker=f"pid:{i % workers}"))  # fmt: skip
    for i in range(20):
        sent = MOVED + drain_s + 0.5 + i * 0.1
        h.ops.append(Op(f"f{i}", f"k{i}", "LOCAL", sent, "us-east", acked=sent + 0.01))
        h.execs.append(Execution(f"f{i}", sent + 0.05, sent + 0.15, region="eu-west",
                                 worker="pid:0"))  # fmt: skip
    if stall_at:
        h.ops.append(Op("s", "k0", "LOCAL", MOVED + stall_at, "us-east", acked=MOVED + stall_at))
        h.execs.append(Execution("s", MOVED + stall_at + 3, MOVED + stall_at + 3.1,
                                 region="eu-west", worker="pid:1"))  # fmt: skip
    return h


def test_a_drain_within_the_tolerance_of_the_prediction_passes() -> None:
    verdict = check(_history(drain_s=3.5), SLOS)
    assert verdict.ok, verdict.violations
    (d,) = drains(_history(drain_s=3.5))
    assert (d.measured_s, d.predicted_s, d.workers_seen) == (3.5, 3.0, 2)
    assert any("drain of us-east in eu-west: measured 3.50 s" in n for n in verdict.notes)


def test_a_drain_far_from_the_prediction_is_a_violation() -> None:
    verdict = check(_history(drain_s=6.0), SLOS)
    assert verdict.violations == [
        "SLO drain_tolerance: us-east's backlog drained in 6.00 s, predicted 3.00 s (±25%)"
    ]


def test_a_scale_up_that_never_ran_is_a_violation() -> None:
    verdict = check(_history(workers=1), SLOS)
    assert "scale-up of us-east in eu-west: 2 workers ordered, 1 ran its tasks" in (
        verdict.violations
    )


def test_a_run_whose_standby_was_not_found_undersized_fails_the_scenario() -> None:
    verdict = check(_history(verdict="ok"), SLOS)
    assert verdict.violations == [
        "SLO drain_tolerance: no promotion was found undersized (us-east: ok)"
    ]
    assert check(_history(verdict="ok"), {"slos": {}}).ok, "unset: not judged"


def test_the_drain_ends_when_the_queue_first_empties_and_a_later_stall_is_only_noted() -> None:
    (d,) = drains(_history(drain_s=3.5, stall_at=10.0))
    assert (d.measured_s, d.last_late_s) == (3.5, 13.0)
    assert check(_history(drain_s=3.5, stall_at=10.0), SLOS).ok


def test_tasks_queued_behind_the_backlog_count_until_none_waits_too_long() -> None:
    """The backlog's last task starts at +3 s, but a task acked at +1 s waits until +5 s:
    the queue first empties then (the fluid drain), not at the backlog's last start."""
    h = _history(drain_s=3.0)
    h.ops.append(Op("q", "kq", "LOCAL", MOVED + 1, "us-east", acked=MOVED + 1))
    h.execs.append(Execution("q", MOVED + 5, MOVED + 5.1, region="eu-west", worker="pid:0"))
    (d,) = drains(h)
    assert d.measured_s == 5.0
    assert check(h, SLOS).violations == [
        "SLO drain_tolerance: us-east's backlog drained in 5.00 s, predicted 3.00 s (±25%)"
    ]
