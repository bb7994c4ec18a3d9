"""The capacity-checked promotion of a game day, judged: was the standby found undersized,
did it scale up, and did the backlog drain within the time the model predicted?

At the end of the run the runner copies the controller's failover history
(`regions.history`, with each promotion's capacity decision) into the game-day history as
`failover` events (`record_failovers`); the checker needs nothing else.

Definitions:

- **route moved**: the promotion's start plus its duration (`FailoverEvent.at + seconds`);
- **backlog** of a promoted home: its tasks first sent before the route moved that
  first ran in the standby after it (the outage's submissions, retried by their clients
  until the route moved, and what the lost region had not run);
- **drain**: from the route moved until the queue first empties after the backlog was
  taken up: the first time, from the last backlog task's first run on, that none of the
  home's acknowledged tasks has waited more than `drain_wait_s` without starting (the
  backlog and what queued behind it; the fluid model's drain). A later stall is not the
  outage's backlog: the last start of a task that waited that long (`last_late_s`) is
  noted beside it;
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
    last_late_s: float = 0.0


def _first_empty(since: float, tasks: list[tuple[float, float]], wait_s: float) -> float:
    """The first time from `since` on when no task (acked, first start) has waited more
    than `wait_s` without starting."""
    waiting = sorted((a + wait_s, s) for a, s in tasks if s > since and a + wait_s < s)
    for candidate in [since] + sorted(s for _, s in waiting):
        if not any(late <= candidate < start for late, start in waiting):
            return candidate
    return since  # not reached: the last start is always a candidate with none waiting


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def drains(history: History, wait_s: float = DRAIN_WAIT_S) -> list[Drain]:
    """One row per promotion the capacity check looked at."""
    acked = {o.id: o.acked for o in history.ops if o.acked is not None}
    sent = {o.id: o.sent for o in history.ops}
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
        ran = [
            (tid, ex) for tid, ex in first.items()
            if homes.get(tid) == ev.home and tid in acked
        ]  # fmt: skip
        moved = [(tid, ex) for tid, ex in ran if ex.region == standby and ex.start >= ev.at]
        backlog = [ex.start for tid, ex in moved if sent[tid] < ev.at]
        late = [ex.start for tid, ex in moved if ex.start - acked[tid] > wait_s]
        tasks = [(acked[tid], ex.start) for tid, ex in ran]
        end = _first_empty(max(backlog, default=ev.at), tasks, wait_s)
        pids = {
            ex.worker
            for ex in history.execs
            if homes.get(ex.task_id) == ev.home and ex.region == standby and ex.start >= ev.at
        }
        out.append(
            Drain(
                ev.home, standby, cap["verdict"], ev.at,
                end - ev.at, _finite(cap.get("after_drain_s")),
                int(cap.get("workers_ordered") or 0), len(pids),
                max(late) - ev.at if late else 0.0,
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
            f"{predicted} s with {d.workers_ordered} workers ordered; {d.workers_seen} seen; "
            f"last start of a task that waited over the drain wait: {d.last_late_s:.2f} s"
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
