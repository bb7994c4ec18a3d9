"""Execution recovery: how long accepted tasks wait to *run*, judged on the history.

A submit that is acknowledged is only half of the service; the checker in
`chaos.checker` judges submits, loss and order, and this module judges what users see
next, per home region:

- **stall**: the longest stretch during which at least one acknowledged task of the
  home was waiting (acked, not yet started) while no execution of the home's tasks was
  running or starting. Tasks that never ran are judged as losses, not stalls. A home a
  `lose_region` step took down is judged by its first run instead (`max_stall_s`
  bounds the homes that should run on unharmed).
- **start latency**: ack -> first start of each task (p50, p99, max), split into tasks
  acked inside a fault window and outside all of them. A task that started before its
  ack came back (the worker is faster than the WAIT) counts 0.
- **first run** after a home is displaced (its region lost or isolated, or its Redis
  primary killed): seconds from the fault's start to the first start of one of the
  home's tasks in another region (its standby). `first_run_after_rto_s` bounds it
  against the submit RTO: tasks must run again soon after submits are accepted again.

SLOs (scenario `slos`): `max_stall_s`, `max_start_s` (worst ack -> start, any task),
`first_run_after_rto_s`,
`start_p99_ms` (outside faults) and `max_first_run_s`; `max_start_s` also spares the
lost homes (their acked tasks wait for the failover by design).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from homeport.chaos.history import Execution, History, percentile


@dataclass
class HomeRecovery:
    home: str
    tasks: int
    stall_s: float
    stall_at_s: float | None  # relative to the history's t0
    start_p50_ms: float | None
    start_p99_ms: float | None
    start_max_ms: float | None
    fault_start_p99_ms: float | None
    fault_start_max_ms: float | None
    first_run_s: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "home"}


def _union(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def longest_gap(
    waiting: list[tuple[float, float]], busy: list[tuple[float, float]]
) -> tuple[float, float | None]:
    """Longest part of the union of `waiting` spans that no `busy` span covers, and
    where it begins."""
    best, at = 0.0, None
    busy_u = _union(busy)
    for a, b in _union(waiting):
        cursor = a
        for s, e in busy_u:
            if e <= cursor:
                continue
            if s >= b:
                break
            if s > cursor and s - cursor > best:
                best, at = s - cursor, cursor
            cursor = max(cursor, e)
            if cursor >= b:
                break
        if cursor < b and b - cursor > best:
            best, at = b - cursor, cursor
    return best, at


def recovery_by_home(history: History) -> dict[str, HomeRecovery]:
    runs: dict[str, list[Execution]] = defaultdict(list)
    for ex in history.execs:
        runs[ex.task_id].append(ex)
    homes: dict[str, list[Any]] = defaultdict(list)
    for op in history.ops:
        if op.acked is not None and op.id in runs:
            homes[op.home].append(op)
    out: dict[str, HomeRecovery] = {}
    for home, ops in sorted(homes.items()):
        waiting: list[tuple[float, float]] = []
        busy: list[tuple[float, float]] = []
        calm: list[float] = []
        stormy: list[float] = []
        for op in ops:
            first = min(e.start for e in runs[op.id])
            if first > op.acked:
                waiting.append((op.acked, first))
            wait_ms = max(0.0, first - op.acked) * 1000
            (stormy if history.in_fault(op.acked) else calm).append(wait_ms)
            busy += [(e.start, e.end if e.end is not None else e.start) for e in runs[op.id]]
        stall, at = longest_gap(waiting, busy)
        everything = calm + stormy
        out[home] = HomeRecovery(
            home, len(ops), stall, None if at is None else at - history.t0,
            percentile(calm, 50), percentile(calm, 99), max(everything) if everything else None,
            percentile(stormy, 99), max(stormy) if stormy else None,
            first_runs_after_loss(history, home, runs, ops),
        )  # fmt: skip
    return out


def displaced(fault: str, targets: list[str]) -> set[str]:
    """Homes a fault step drives out of their own region (a failover follows): a lost or
    isolated region's home, and the home whose Redis primary was killed."""
    if fault == "lose_region":
        return set(targets)
    if fault == "isolate":  # its targets are links (`A->B:service`): the region in all of them
        ends = [set(t.split(":", 1)[0].split("->")) for t in targets if "->" in t]
        return set.intersection(*ends) if ends else set()
    if fault == "kill":
        return {
            t.removeprefix("redis-").removesuffix("-primary")
            for t in targets
            if t.startswith("redis-") and t.endswith("-primary")
        }
    return set()


def first_runs_after_loss(
    history: History, home: str, runs: dict[str, list[Execution]], ops: list[Any]
) -> list[float]:
    """Per step that displaced `home`: seconds until one of its tasks started elsewhere."""
    out = []
    for f in history.faults:
        if home not in displaced(f.fault, f.targets):
            continue
        starts = [
            e.start
            for op in ops
            for e in runs[op.id]
            if e.start >= f.start and e.region and e.region != home
        ]
        out.append(min(starts) - f.start if starts else math.inf)
    return out


def lost_homes(history: History) -> set[str]:
    """Homes a fault step displaced (see `displaced`): their outage is judged by
    `max_first_run_s` and the RTO, not by the stall bound of the homes that should run
    on unharmed."""
    return {home for f in history.faults for home in displaced(f.fault, f.targets)}


def judge(
    recovery: dict[str, HomeRecovery],
    slos: dict[str, Any],
    lost: frozenset[str] | set[str] = frozenset(),
) -> list[str]:
    """Violations of the execution SLOs."""
    out = []
    for home, r in recovery.items():
        limit = slos.get("max_stall_s")
        if limit is not None and home not in lost and r.stall_s > limit:
            out.append(
                f"SLO max_stall_s: {home} had tasks waiting and none running for "
                f"{r.stall_s:.2f} s (from t={r.stall_at_s or 0:.1f} s) > {limit} s"
            )
        limit = slos.get("max_start_s")
        if (
            limit is not None
            and home not in lost
            and r.start_max_ms is not None
            and r.start_max_ms / 1000 > limit
        ):
            out.append(
                f"SLO max_start_s: a task of {home} waited {r.start_max_ms / 1000:.2f} s "
                f"from ack to start > {limit} s"
            )
        limit = slos.get("start_p99_ms")
        if limit is not None and r.start_p99_ms is not None and r.start_p99_ms > limit:
            out.append(f"SLO start_p99_ms: {home} ack->start p99 {r.start_p99_ms:.1f} ms > {limit}")
        first_limit = slos.get("max_first_run_s")
        for seconds in r.first_run_s:
            if first_limit is not None and seconds > first_limit:
                out.append(
                    f"SLO max_first_run_s: {home}'s first task ran {seconds:.2f} s after "
                    f"its region was lost > {first_limit} s"
                )
    return out
