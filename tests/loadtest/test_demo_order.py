"""The demo's per-key order rule is the game-day checker's: first executions in submit
order. The case below is from a real demo run (2026-12-02): two tasks of a key ran in
order on the standby during the failover and again, in order, on the home after the
failback; the old rule (next first start before previous *last* finish) called that an
order break."""

from __future__ import annotations

from homeport.loadtest.demo import Op, _order_violations


def _ops(*ids: str) -> list[Op]:
    return [
        Op("k", i, tid, "LOCAL", "us-east", float(i), acked=float(i)) for i, tid in enumerate(ids)
    ]


def test_both_tasks_rerun_in_order_after_a_failback_is_no_violation() -> None:
    runs = {
        "a": [(303.898, 303.898), (315.549, 315.549)],  # the standby, then the home
        "b": [(304.720, 304.720), (315.603, 315.603)],
    }
    assert _order_violations(_ops("a", "b"), runs) == 0


def test_a_next_task_started_before_the_previous_one_finished_is_one() -> None:
    runs = {"a": [(10.0, 10.5)], "b": [(10.2, 10.3)], "c": [(11.0, 11.1)]}
    assert _order_violations(_ops("a", "b", "c"), runs) == 1


def test_tasks_that_never_ran_are_left_out() -> None:
    runs = {"a": [(10.0, 10.5)], "c": [(11.0, 11.1)]}
    assert _order_violations(_ops("a", "b", "c"), runs) == 0
