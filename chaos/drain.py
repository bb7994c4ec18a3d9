"""The capacity-checked promotion of a game day, judged: was the standby found undersized,
did it scale up, and did the backlog drain within the time the model predicted?

At the end of the run the runner copies the controller's failover history
(`regions.history`, with each promotion's capacity decision) into the game-day history as
`failover` events (`record_failovers`); the checker needs nothing else.

Definitions:

- **route moved**: the promotion's start plus its duration (`FailoverEvent.at + seconds`);
- **drain** of a promoted home: from the route moved until the last first run, in the
  standby, of one of the home's tasks that waited more than `drain_wait_s` between its
  acknowledgement and its start (the outage's backlog and what queued behind it); 0 when
  none waited that long;
- **predicted drain**: the decision's `after_drain_s`, the model's drain with the worker
  count it ordered (`simulation.absorb`);
- **workers seen**: distinct worker processes of the standby that ran the home's tasks
  after the route moved (the journal names each by pid).

SLOs (`slos:`): `drain_tolerance` (a share: |measured - predicted| <= share x predicted);
`drain_wait_s` (the wait that counts as backlog; default 1 s); the run must contain an
undersized promotion whose scale-up ran (workers seen >= workers ordered).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from homeport.chaos.history import Event, History
from homeport.regions import history as failover_history
from homeport.regions.control import ControlPlane

DRAIN_WAIT_S = 1.0


async def record_failovers(cp: ControlPlane, history: History) -> int:
    """Copy the controller's failover records of this run into `history` as events."""
    t0 = history.t0
    found = await failover_history.events(cp.etcd, cp.topology.etcd_prefix)
    for ev in sorted(found, key=lambda e: e.at):
        if ev.at >= t0:
            detail = json.dumps(ev.__dict__, sort_keys=True, default=str)
            history.events.append(Event(ev.at + ev.seconds, "failover", ev.home, detail))
    return len(found)


@dataclass(frozen=True)
class Drain:
    home: str
    standby: str
    verdict: str
    moved_at: float
    measured_s: float
    predicted_s: float | None
    workers_ordered: int
    workers_seen: int


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def drains(history: History, wait_s: float = DRAIN_WAIT_S) -> list[Drain]:
    """One row per promotion the capacity check looked at."""
    acked = {o.id: o.acked for o in history.ops if o.acked is not None}
    first: dict[str, Any] = {}
    for ex in sorted(history.execs, key=lambda e: e.start):
        first.setdefault(ex.task_id, ex)
    homes = {o.id: o.home for o in history.ops}
    out = []
    for ev in history.events:
        if ev.kind != "failover":
            continue
        record = json.loads(ev.detail)
        cap = record.get("capacity")
        if not cap or record.get("kind") != "promote":
            continue
        standby = record["to"]
        late = [
            ex.start
            for tid, ex in first.items()
            if homes.get(tid) == ev.home and ex.region == standby and ex.start >= ev.at
            and tid in acked and ex.start - acked[tid] > wait_s
        ]  # fmt: skip
        pids = {
            ex.worker
            for ex in history.execs
            if homes.get(ex.task_id) == ev.home and ex.region == standby and ex.start >= ev.at
        }
        out.append(
            Drain(
                ev.home, standby, cap["verdict"], ev.at,
                max(late) - ev.at if late else 0.0, _finite(cap.get("after_drain_s")),
                int(cap.get("workers_ordered") or 0), len(pids),
            )
        )  # fmt: skip
    return out


def judge(history: History, slos: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(violations, notes) of the drain SLOs; nothing when `drain_tolerance` is unset."""
    tolerance = slos.get("drain_tolerance")
    if tolerance is None:
        return [], []
    rows = drains(history, slos.get("drain_wait_s") or DRAIN_WAIT_S)
    undersized = [d for d in rows if d.verdict == "undersized"]
    if not undersized:
        seen = ", ".join(f"{d.home}: {d.verdict}" for d in rows) or "no checked promotion"
        return [f"SLO drain_tolerance: no promotion was found undersized ({seen})"], []
    violations, notes = [], []
    for d in undersized:
        predicted = "-" if d.predicted_s is None else f"{d.predicted_s:.2f}"
        notes.append(
            f"drain of {d.home} in {d.standby}: measured {d.measured_s:.2f} s, predicted "
            f"{predicted} s with {d.workers_ordered} workers ordered; {d.workers_seen} seen"
        )
        if d.workers_seen < d.workers_ordered:
            violations.append(
                f"scale-up of {d.home} in {d.standby}: {d.workers_ordered} workers ordered, "
                f"{d.workers_seen} ran its tasks"
            )
        if d.predicted_s is None or abs(d.measured_s - d.predicted_s) > tolerance * d.predicted_s:
            violations.append(
                f"SLO drain_tolerance: {d.home}'s backlog drained in {d.measured_s:.2f} s, "
                f"predicted {predicted} s (±{tolerance:.0%})"
            )
    return violations, notes
