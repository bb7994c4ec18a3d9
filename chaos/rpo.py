"""The predicted RPO of a region loss, from the run's own history (`invariants.rpo:
predicted`).

For each data-loss fault on a home (`checker._loss_windows`), the model of
`regions.rpo` is fed with what the run measured *before* the loss, never with the losses
themselves:

- the mirror link's latency and jitter: the latency toxics on `<standby>-><home>:redis`
  (downstream: the replication stream) active when the loss starts, from the timeline;
  and whether the link dies with the home: a `link_down` of it that started at most
  `CUT_S` before the loss (Toxiproxy delivers what a latency toxic holds when only the
  primary dies, so without the cut the bytes in flight are not lost: `regions.rpo`);
- the base replication delay `B`: per GLOBAL submit of the home before the first fault,
  its latency minus the median latency of the home's LOCAL submits sent within `PAIR_S`
  of it (a GLOBAL acknowledgement waits for the mirror: the difference is the mirror's
  round trip, so an upper estimate of the one-way delay);
- the ack -> end-of-first-run times `E` of the home's LOCAL and REGION tasks acknowledged
  `RUN_FROM_S`..`RUN_UNTIL_S` before the loss (a task with no finished run by the loss
  counts as never finishing: it is exposed for the whole window);
- the rate `λ` of acknowledged LOCAL and REGION submits of the home over the `RATE_S`
  before the loss.

The checker then holds the run to it: a lost LOCAL or REGION task acknowledged outside
[loss - window, loss + `ACK_SLACK_S`] is a violation (when the level is in `no_loss`), and
so is a count above the Poisson bound. `measured_delay_s` reports the mirror's round
trip while the toxic was on (GLOBAL minus LOCAL latency), to compare with `L + B`.
"""

from __future__ import annotations

import statistics
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import Any

from homeport.chaos.catalog import catalog
from homeport.chaos.errors import ChaosError
from homeport.chaos.history import History, Op
from homeport.regions.rpo import MirrorDelay, RpoPrediction, predict

RATE_S = 5.0  # seconds before the loss over which the submit rate is measured
RUN_FROM_S = 10.0  # ack -> run samples: tasks acknowledged this long before the loss ...
RUN_UNTIL_S = 1.0  # ... up to this long before it (they had time to run)
MIN_BASE_SAMPLES = 5  # GLOBAL submits before any fault needed to measure B
EXPOSED = ("LOCAL", "REGION")
CUT_S = 1.0  # a link_down this close before the loss is part of it
PAIR_S = 0.25  # a GLOBAL submit's latency is compared with LOCAL ones sent this close


@dataclass
class LossRpo:
    """One data-loss fault's prediction and what happened."""

    home: str
    at: float
    latency_s: float
    jitter_s: float
    base_p50_s: float
    base_max_s: float
    prediction: RpoPrediction
    measured_delay_s: float | None
    cut_lead_s: float | None = None
    lost: int = 0
    lost_outside: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "home": self.home,
            "latency_s": self.latency_s,
            "jitter_s": self.jitter_s,
            "link_cut_before_s": self.cut_lead_s,
            "base_p50_s": self.base_p50_s,
            "base_max_s": self.base_max_s,
            **self.prediction.as_dict(),
            "measured_delay_s": self.measured_delay_s,
            "lost": self.lost,
            "lost_outside_window": self.lost_outside,
        }


class RpoUnpredictable(ChaosError, ValueError):
    """The history lacks what the model needs (e.g. no GLOBAL submit before the faults)."""


def mirror_link(spec: dict[str, Any], home: str) -> str:
    shape = spec.get("topology", {})
    cat = catalog(shape.get("regions", 3), shape.get("workers_per_region", 1))
    return f"{cat.standby[home]}->{home}:redis"


def link_toxics(
    history: History, spec: dict[str, Any], link: str, at: float
) -> tuple[float, float]:
    """(latency, jitter) in seconds of the downstream latency toxics on `link` at `at`."""
    from homeport.chaos.faults import fault_for
    from homeport.chaos.faults.latency import Latency
    from homeport.chaos.scenario import Scenario

    steps = Scenario.model_validate(spec).timeline
    latency = jitter = 0.0
    for f in history.faults:
        if f.fault != "latency" or link not in f.targets or f.step >= len(steps):
            continue
        if not f.start <= at <= (f.end if f.end is not None else at):
            continue
        fault = fault_for(steps[f.step], f.step)
        if isinstance(fault, Latency) and "downstream" in fault.streams():
            attrs = fault.attributes()
            latency += attrs["latency"] / 1e3
            jitter += attrs["jitter"] / 1e3
    return latency, jitter


def link_cut(history: History, link: str, at: float) -> float | None:
    """Seconds between the mirror link going down (a `link_down` step still applied) and
    the loss at `at`; None when the link stayed up."""
    starts = [
        f.start
        for f in history.faults
        if f.fault == "link_down"
        and link in f.targets
        and at - CUT_S <= f.start <= at
        and (f.end is None or f.end >= at)
    ]
    return at - max(starts) if starts else None


def _mirror_round_trips(ops: list[Op]) -> list[float]:
    """Per acknowledged GLOBAL submit, its latency minus the median latency of the LOCAL
    submits sent within `PAIR_S` of it: what the wait for the mirror added. Pairing in
    time cancels what delays both alike (the client's own event loop on a loaded
    machine); a GLOBAL submit with no LOCAL neighbour gives no sample."""
    local = sorted(
        (o.sent, o.acked - o.sent) for o in ops if o.durability == "LOCAL" and o.acked is not None
    )
    sends = [sent for sent, _ in local]
    out = []
    for o in ops:
        if o.durability != "GLOBAL" or o.acked is None:
            continue
        lo, hi = bisect_left(sends, o.sent - PAIR_S), bisect_right(sends, o.sent + PAIR_S)
        if hi > lo:
            near = statistics.median(lat for _, lat in local[lo:hi])
            out.append(max(0.0, (o.acked - o.sent) - near))
    return out


def predict_loss(history: History, spec: dict[str, Any], home: str, at: float) -> LossRpo:
    first_fault = min((f.start for f in history.faults), default=at)
    ops = [o for o in history.ops if o.home == home]
    base = _mirror_round_trips([o for o in ops if o.sent < first_fault])
    if len(base) < MIN_BASE_SAMPLES:
        raise RpoUnpredictable(
            f"{home}: {len(base)} acknowledged GLOBAL submits before the first fault, need "
            f"{MIN_BASE_SAMPLES} to measure the base replication delay; give the load GLOBAL "
            "weight and start the first fault later"
        )
    link = mirror_link(spec, home)
    latency, jitter = link_toxics(history, spec, link, at)
    cut = link_cut(history, link, at)
    acks = [(o, o.acked) for o in ops if o.durability in EXPOSED and o.acked is not None]
    rate = sum(1 for _, a in acks if at - RATE_S <= a < at) / RATE_S
    ends: dict[str, float] = {}
    for ex in history.execs:
        if ex.status == "succeeded" and ex.end is not None:
            ends[ex.task_id] = min(ends.get(ex.task_id, ex.end), ex.end)
    # A task not finished by the loss counts as running until the loss (censored at it).
    runs = [
        min(ends.get(o.id, at), at) - a for o, a in acks if at - RUN_FROM_S <= a <= at - RUN_UNTIL_S
    ]
    delay = MirrorDelay(latency, jitter, tuple(base), in_flight_lost=cut is not None)
    during = [o for o in ops if (first_fault <= o.sent < at)]
    trips = _mirror_round_trips(during)
    return LossRpo(
        home, at, latency, jitter, statistics.median(base), max(base),
        predict(rate, delay, runs or None, cut or 0.0),
        statistics.median(trips) if trips else None, cut,
    )  # fmt: skip


def predict_losses(
    history: History, spec: dict[str, Any], windows: list[tuple[str, float]]
) -> tuple[list[LossRpo], list[str]]:
    """A prediction per loss window (home, start), or a violation naming why the model
    could not be fed (a run meant to be judged by its prediction must be predictable)."""
    out: list[LossRpo] = []
    problems: list[str] = []
    for home, at in windows:
        try:
            out.append(predict_loss(history, spec, home, at))
        except RpoUnpredictable as exc:
            problems.append(f"RPO not predicted: {exc}")
    return out, problems


def judge_counts(predicted: list[LossRpo], lost: list[tuple[str, str, bool]]) -> list[str]:
    """Count each prediction's lost LOCAL/REGION tasks, given as (home, level, within the
    predicted window), and hold those within it to the Poisson bound (those outside are
    violations of their own, `checker.find_lost`)."""
    violations = []
    for p in predicted:
        mine = [within for home, level, within in lost if home == p.home and level in EXPOSED]
        p.lost = sum(mine)
        p.lost_outside = len(mine) - p.lost
        if p.lost > p.prediction.bound:
            violations.append(
                f"RPO: {p.lost} LOCAL/REGION tasks of {p.home} lost, more than the predicted "
                f"bound {p.prediction.bound} (mean {p.prediction.expected_lost:.2f}, "
                f"window {p.prediction.window_s * 1e3:.0f} ms)"
            )
    return violations
