"""The predicted-RPO judge (`invariants.rpo: predicted`, chaos.rpo) can fail: a hand-built
history of the mirror-latency scenario, a loss inside the predicted window passes, one
before it and too many inside it are violations, and a run it cannot feed is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from homeport.chaos.checker import check
from homeport.chaos.history import Execution, FaultRecord, History, Op

T0 = 1_800_000_000.0
LOSS = T0 + 18
SPEC: dict[str, Any] = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "scenarios/mirror-latency-region-loss.yaml").read_text()
)
LINK = "eu-west->us-east:redis"


def _history() -> History:
    """us-east: LOCAL submits every 25 ms (40/s), each run 100 ms after its ack; a
    GLOBAL submit every 0.5 s whose ack takes 8 ms more than a LOCAL one (the mirror's
    round trip) before the toxic; the toxic from 8 s; the mirror link down 5 ms before
    the loss at 18 s (the loss of the region's network)."""
    h = History(meta={"t0": T0})
    for i in range(int(18 / 0.025)):
        sent = T0 + i * 0.025
        op = Op(f"l{i}", f"k{i % 20}", "LOCAL", sent, home="us-east", acked=sent + 0.002)
        h.ops.append(op)
        h.execs.append(Execution(op.id, sent + 0.01, sent + 0.102))
    for i in range(int(17.5 / 0.5)):
        sent = T0 + i * 0.5
        trip = 0.008 if sent < T0 + 8 else 0.058
        h.ops.append(Op(f"g{i}", "g", "GLOBAL", sent, home="us-east", acked=sent + 0.002 + trip))
        h.execs.append(Execution(f"g{i}", sent + 0.1, sent + 0.2))
    h.faults.append(FaultRecord("latency", 0, T0 + 8, None, [LINK], disruptive=True))
    h.faults.append(FaultRecord("link_down", 1, LOSS - 0.005, None, [LINK]))
    h.faults.append(FaultRecord("lose_region", 2, LOSS, None, ["us-east"]))
    return h


def _lose(h: History, acked: float, n: int = 1) -> None:
    for j in range(n):
        h.ops.append(Op(f"x{acked}-{j}", "x", "REGION", acked - 0.002, "us-east", acked=acked))


def test_losses_inside_the_predicted_window_pass_and_are_counted() -> None:
    h = _history()
    _lose(h, LOSS - 0.030, 2)
    verdict = check(h, SPEC)
    assert verdict.ok, verdict.violations
    (p,) = verdict.rpo
    assert (p.home, p.latency_s, p.jitter_s) == ("us-east", 0.05, 0.0)
    assert p.cut_lead_s == pytest.approx(0.005, abs=1e-5)
    assert p.base_max_s == pytest.approx(0.008, abs=1e-3)
    # 50 ms toxic + 8 ms measured base, from the cut 5 ms before the loss.
    assert p.prediction.window_s == pytest.approx(0.063, abs=1e-3)
    # 40 LOCAL/s in the 5 s before the loss; every run outlasts the delay: 40 x 63 ms.
    assert p.prediction.rate_per_s == pytest.approx(40, abs=1)
    assert p.prediction.expected_lost == pytest.approx(40 * 0.063, rel=0.05)
    assert (p.lost, p.lost_outside) == (2, 0)
    assert p.measured_delay_s == pytest.approx(0.058, abs=1e-3)
    assert verdict.summary()["rpo"][0]["bound"] == p.prediction.bound


def test_a_loss_acknowledged_before_the_predicted_window_is_a_violation() -> None:
    h = _history()
    _lose(h, LOSS - 0.3)  # inside a 0.5 s reported lag, outside the 58 ms prediction
    verdict = check(h, SPEC)
    assert not verdict.ok
    assert any("lost REGION task" in v for v in verdict.violations), verdict.violations
    assert (verdict.rpo[0].lost, verdict.rpo[0].lost_outside) == (0, 1)


def test_more_losses_than_the_poisson_bound_is_a_violation() -> None:
    h = _history()
    bound = check(h, SPEC).rpo[0].prediction.bound
    _lose(h, LOSS - 0.010, bound + 1)
    verdict = check(h, SPEC)
    assert [v for v in verdict.violations if v.startswith("RPO:")] == [
        f"RPO: {bound + 1} LOCAL/REGION tasks of us-east lost, more than the predicted bound "
        f"{bound} (mean {verdict.rpo[0].prediction.expected_lost:.2f}, window 63 ms)"
    ]


def test_without_the_link_cut_the_bytes_in_flight_arrive_and_only_the_base_delay_counts() -> None:
    h = _history()
    h.faults = [f for f in h.faults if f.fault != "link_down"]
    _lose(h, LOSS - 0.030)
    verdict = check(h, SPEC)
    (p,) = verdict.rpo
    assert p.cut_lead_s is None and p.prediction.window_s == pytest.approx(0.008, abs=1e-3)
    assert any("lost REGION task" in v for v in verdict.violations), verdict.violations


def test_a_run_without_global_submits_before_the_faults_cannot_be_judged() -> None:
    h = _history()
    h.ops = [o for o in h.ops if o.durability != "GLOBAL"]
    verdict = check(h, SPEC)
    assert not verdict.ok and verdict.rpo == []
    assert any("RPO not predicted: us-east: 0 acknowledged GLOBAL" in v for v in verdict.violations)


def test_a_lost_global_task_is_a_violation_whatever_the_window() -> None:
    h = _history()
    h.ops.append(Op("gx", "g", "GLOBAL", LOSS - 0.05, "us-east", acked=LOSS - 0.01))
    verdict = check(h, SPEC)
    assert any("lost GLOBAL task gx" in v for v in verdict.violations)


def test_a_write_sent_before_the_loss_and_acknowledged_late_may_fall_inside_the_window() -> None:
    """The client stamps an ack when its event loop gets to it: on a loaded machine (or
    while the fault's kills hold the loop) that is long after the write. Its write lies
    somewhere between send and ack, so it may be inside the window; a submit sent after
    the window closed cannot be."""
    h = _history()
    h.ops.append(Op("late", "x", "LOCAL", LOSS - 0.4, "us-east", acked=LOSS + 1.4))
    h.ops.append(Op("after", "y", "LOCAL", LOSS + 0.6, "us-east", acked=LOSS + 0.61))
    verdict = check(h, SPEC)
    by_id = {x.id: x for x in verdict.lost}
    assert by_id["late"].within_rpo and not by_id["after"].within_rpo
    assert [v for v in verdict.violations if "lost" in v] == [
        "lost LOCAL task after (key y): never ran"
    ]
