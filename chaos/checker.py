"""The checker: judges a history, never the logs (the Jepsen way).

Definitions (each a function below):

- **lost**: a submit that was acknowledged, for which no region's database holds a
  successful execution. A lost GLOBAL task is always a violation. A lost LOCAL or
  REGION task whose write may fall inside the RPO window of a data-loss fault on its
  home (a region loss, or its Redis primary killed) — from the fault's start minus the
  mirror lag measured just before it (or the predicted RPO, `chaos.rpo`), to the fault's
  start plus `ACK_SLACK_S` — is reported as *within RPO*, not a violation; elsewhere it
  is a violation too. The write happened somewhere between the submit's send and its
  acknowledgement as the client saw them, so it may fall inside when it was acknowledged
  after the window opened and sent before it closed (the client stamps acks when its own
  event loop gets to them, which a loaded machine delays).
- **duplicate**: every execution of a task beyond its first (at-least-once makes them
  possible; the scenario bounds them).
- **order violation**: for two acknowledged tasks of one key, where the second was sent
  after the first was acknowledged, the second's first execution started before the
  first's first execution finished.
- **latency**: submit-to-acknowledgement of acknowledged submits; percentiles outside
  fault windows unless the SLO says `during_faults`.
- **RTO** of a disruptive fault: from its start to the first acknowledged submit after
  which `CLEAN_S` seconds of submits all succeeded (0 when nothing failed), judged on the
  submits sent before the next fault step starts when the service recovered by then
  (so a later failback's brief switch is not charged to the fault before it). A
  NOT_REPLICATED refusal is not an outage: it is the designed answer to a GLOBAL submit
  while its home's mirror cannot be reached (the task was not acknowledged, the client
  may resubmit with the same id), so such submits are left out of the RTO; LOCAL and
  REGION submits of the same home, and GLOBAL submits of the others, still count.
- **switch time** of a planned step (promote, failback): the same measure as RTO, for
  the brief refusals while routes move (SLO `max_switch_s`).
- **mirror lag**: the largest lag sample per home region, outside deliberate faults.
- **GLOBAL back** after a region loss (`lose_region`), per home with GLOBAL submits: from
  the loss to the first acknowledged GLOBAL submit after the home's last failed one (0
  when none failed; infinite when none was acknowledged again), judged before the next
  step like the RTO. NOT_REPLICATED refusals count here: this is the time re-protection
  (`regions.protection`) takes to give every home a cross-region replica again (SLO
  `max_reprotect_s`).
- **execution recovery** (`chaos.execution`): per home, the longest stall (tasks waiting,
  none running), ack -> start latency inside and outside faults, and the first run of a
  lost home's tasks on its standby.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from homeport.chaos.drain import judge as judge_drain
from homeport.chaos.execution import HomeRecovery, lost_homes, recovery_by_home
from homeport.chaos.execution import judge as judge_execution
from homeport.chaos.history import Execution, History, Op, percentile
from homeport.chaos.rpo import LossRpo, judge_counts, predict_losses

ACK_SLACK_S = 0.5  # acks this long after a region died may still predate the kill
CLEAN_S = 1.0  # seconds of successful submits that count as "recovered"
ORDER_TOLERANCE_S = 0.0005  # the databases store microseconds; workers stamp with one clock
DEFAULT_RPO_S = 1.0  # assumed mirror lag when no sample precedes a data-loss fault
DATA_LOSS_FAULTS = ("lose_region", "kill")
NOT_REPLICATED = "NotReplicatedError"  # the SDK's exception for a NOT_REPLICATED refusal


@dataclass
class Lost:
    id: str
    key: str
    durability: str
    acked: float
    within_rpo: bool
    why: str


@dataclass
class OrderViolation:
    key: str
    first: str
    second: str
    detail: str


@dataclass
class Verdict:
    ok: bool
    acknowledged: int
    sent: int
    errors: int
    executed: int
    lost: list[Lost]
    duplicates: int
    duplicated_tasks: int
    order_violations: list[OrderViolation]
    p50_ms: float | None
    p99_ms: float | None
    rto_s: float | None
    max_mirror_lag_s: float | None
    switch_s: float | None = None
    global_back_s: dict[str, float] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    recovery: dict[str, HomeRecovery] = field(default_factory=dict)
    rpo: list[LossRpo] = field(default_factory=list)

    def lost_by_level(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for item in self.lost:
            row = out.setdefault(item.durability, {"lost": 0, "within_rpo": 0})
            row["within_rpo" if item.within_rpo else "lost"] += 1
        return out

    def summary(self) -> dict[str, Any]:
        return {
            "verdict": "PASS" if self.ok else "FAIL",
            "acknowledged": self.acknowledged,
            "sent": self.sent,
            "errors": self.errors,
            "executed": self.executed,
            "lost": sum(1 for x in self.lost if not x.within_rpo),
            "lost_within_rpo": sum(1 for x in self.lost if x.within_rpo),
            "lost_by_level": self.lost_by_level(),
            "duplicates": self.duplicates,
            "order_violations": len(self.order_violations),
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "rto_s": self.rto_s,
            "switch_s": self.switch_s,
            "global_back_s": self.global_back_s,
            "max_mirror_lag_s": self.max_mirror_lag_s,
            "execution": {home: r.summary() for home, r in self.recovery.items()},
            "rpo": [p.summary() for p in self.rpo],
            "violations": self.violations[:20],
            "more_violations": max(0, len(self.violations) - 20),
            "notes": self.notes,
        }


def first_runs(history: History) -> dict[str, list[Execution]]:
    runs: dict[str, list[Execution]] = defaultdict(list)
    for ex in history.execs:
        runs[ex.task_id].append(ex)
    for items in runs.values():
        items.sort(key=lambda e: e.start)
    return runs


def _loss_windows(history: History) -> list[tuple[str, float]]:
    """(home, start) of every fault that can lose unmirrored writes of `home`."""
    out = []
    for f in history.faults:
        if f.fault == "lose_region":
            # A region's own home data dies with it; the mirrors it hosts are copies.
            out += [(region, f.start) for region in f.targets]
        elif f.fault == "kill":
            out += [
                (t.removeprefix("redis-").removesuffix("-primary"), f.start)
                for t in f.targets
                if t.startswith("redis-") and t.endswith("-primary")
            ]
    return out


def _rpo_before(home: str, at: float, history: History) -> float:
    samples = [s for s in history.lags if s.home == home and at - 10 <= s.at <= at]
    finite = [s.seconds for s in samples if math.isfinite(s.seconds)]
    return max(finite) if finite else DEFAULT_RPO_S


def find_lost(
    history: History, no_loss: list[str], predicted: list[LossRpo] | None = None
) -> tuple[list[Lost], list[str]]:
    """Lost tasks, judged by the reported RPO, or by the `predicted` one when given."""
    runs = first_runs(history)
    done = {tid for tid, items in runs.items() if any(e.status == "succeeded" for e in items)}
    windows = (
        [(p.home, p.at, p.prediction.window_s) for p in predicted]
        if predicted is not None
        else [(home, at, _rpo_before(home, at, history)) for home, at in _loss_windows(history)]
    )
    lost: list[Lost] = []
    violations: list[str] = []
    for op in history.ops:
        if op.acked is None or op.id in done:
            continue
        ran = "ran but never succeeded" if op.id in runs else "never ran"
        exposed = next(
            (
                (at, rpo)
                for home, at, rpo in windows
                if home == op.home and op.acked >= at - rpo and op.sent <= at + ACK_SLACK_S
            ),
            None,
        )
        within = exposed is not None and op.durability != "GLOBAL"
        why = ran + (f"; acked within the RPO ({exposed[1]:.2f}s) of a loss" if exposed else "")
        lost.append(Lost(op.id, op.key, op.durability, op.acked, within, why))
        if not within and op.durability in no_loss:
            violations.append(f"lost {op.durability} task {op.id} (key {op.key}): {why}")
    return lost, violations


def count_duplicates(history: History) -> tuple[int, int]:
    extra = 0
    tasks = 0
    for items in first_runs(history).values():
        if len(items) > 1:
            extra += len(items) - 1
            tasks += 1
    return extra, tasks


def find_order_violations(history: History) -> list[OrderViolation]:
    runs = first_runs(history)
    by_key: dict[str, list[Op]] = defaultdict(list)
    for op in history.ops:
        if op.acked is not None:
            by_key[op.key].append(op)
    out = []
    for key, ops in by_key.items():
        ops.sort(key=lambda o: o.sent)
        for a, b in zip(ops, ops[1:], strict=False):
            if b.sent < (a.acked or math.inf):
                continue  # sent concurrently: no order promised between them
            ra, rb = runs.get(a.id), runs.get(b.id)
            if not ra or not rb:
                continue
            a_end = ra[0].end if ra[0].end is not None else ra[0].start
            if rb[0].start + ORDER_TOLERANCE_S < ra[0].start:
                out.append(OrderViolation(key, a.id, b.id, "second started before the first"))
            elif rb[0].start + ORDER_TOLERANCE_S < a_end:
                out.append(
                    OrderViolation(
                        key, a.id, b.id,
                        f"second started {a_end - rb[0].start:.3f}s before the first finished",
                    )
                )  # fmt: skip
    return out


def refused_unreplicated(op: Op) -> bool:
    """A GLOBAL submit refused because its mirror could not confirm it: a designed
    answer, not a failure of service (see RTO in the module docstring)."""
    return op.acked is None and (op.error or "").startswith(NOT_REPLICATED)


def recovery_times(history: History, disruptive: bool = True) -> list[float]:
    """Per fault step (the disruptive ones, or else the planned ones: promote,
    failback), seconds from its start until submits succeed again; see RTO above.

    A failed submit counts when it failed (a submit sent just before a step and retried
    into it is that step's failure); an acknowledged one when it was sent."""
    ops = sorted((o for o in history.ops if not refused_unreplicated(o)), key=_when)
    out = []
    starts = sorted({f.start for f in history.faults})
    for f in history.faults:
        if f.disruptive != disruptive:
            continue
        after = [o for o in ops if _when(o) >= f.start]
        # Failures after the next step began (a failback's switch, another kill) are that
        # step's; this fault recovered if it did so before then.
        nxt = next((s for s in starts if s > f.start), math.inf)
        window = [o for o in after if _when(o) < nxt]
        if not any(o.acked is None for o in window):
            out.append(0.0)
            continue
        recovered = _first_clean_run(window)
        if recovered is None and nxt < math.inf:  # not before the next step: judge it all
            recovered = _first_clean_run(after)
        out.append(recovered - f.start if recovered is not None else math.inf)
    return out


def global_back_times(history: History) -> dict[str, float]:
    """Per home with GLOBAL submits, the worst over region losses of the GLOBAL-back time
    (see the module docstring)."""
    ops = sorted((o for o in history.ops if o.durability == "GLOBAL"), key=_when)
    starts = sorted({f.start for f in history.faults})
    out: dict[str, float] = {}
    for f in history.faults:
        if f.fault != "lose_region":
            continue
        nxt = next((s for s in starts if s > f.start), math.inf)
        for home in sorted({o.home for o in ops}):
            after = [o for o in ops if o.home == home and _when(o) >= f.start]
            back = _acked_again([o for o in after if _when(o) < nxt], f.start)
            if back is None and nxt < math.inf:
                back = _acked_again(after, f.start)
            seconds = back - f.start if back is not None else math.inf
            out[home] = max(out.get(home, 0.0), seconds)
    return out


def _acked_again(ops: list[Op], since: float) -> float | None:
    """When the first acknowledgement after the last failure came: `since` when nothing
    failed, None when nothing was acknowledged after the last failure."""
    last_fail = max((_when(o) for o in ops if o.acked is None), default=None)
    if last_fail is None:
        return since
    acks = [o.acked for o in ops if o.acked is not None and o.acked > last_fail]
    return min(acks) if acks else None


def _when(op: Op) -> float:
    return op.error_at if op.acked is None and op.error_at is not None else op.sent


def _first_clean_run(ops: list[Op]) -> float | None:
    """Send time of the first op that starts CLEAN_S seconds of only-acked submits,
    after the last failure."""
    last_fail = max((_when(o) for o in ops if o.acked is None), default=None)
    if last_fail is None:
        return ops[0].sent if ops else None
    clean = [o for o in ops if o.sent > last_fail]
    if not clean or clean[-1].sent - clean[0].sent < CLEAN_S:
        return None
    return clean[0].sent


def check(history: History, scenario: dict[str, Any] | None = None) -> Verdict:
    """Judge `history` against the invariants and SLOs of `scenario` (its parsed YAML;
    by default the copy stored in the history's meta)."""
    spec = scenario if scenario is not None else history.meta.get("scenario", {})
    inv = spec.get("invariants", {})
    slos = spec.get("slos", {})
    predicted: list[LossRpo] | None = None
    violations: list[str] = []
    if inv.get("rpo") == "predicted":
        predicted, violations = predict_losses(history, spec, _loss_windows(history))
    lost, lost_violations = find_lost(
        history, inv.get("no_loss", ["LOCAL", "REGION", "GLOBAL"]), predicted
    )
    violations += lost_violations
    if predicted is not None:
        homes = {o.id: o.home for o in history.ops}
        violations += judge_counts(
            predicted, [(homes.get(x.id, ""), x.durability, x.within_rpo) for x in lost]
        )
    dups, dup_tasks = count_duplicates(history)
    max_dups = inv.get("max_duplicates", -1)
    if max_dups >= 0 and dups > max_dups:
        violations.append(f"{dups} duplicate executions, more than the {max_dups} allowed")
    order = find_order_violations(history) if inv.get("per_key_order", True) else []
    violations += [f"order: key {v.key}: {v.first} then {v.second}: {v.detail}" for v in order]
    acked = [o for o in history.ops if o.acked is not None]
    during = bool(slos.get("during_faults", False))
    lat = [o.latency_ms or 0.0 for o in acked if during or not history.in_fault(o.sent)]
    p50, p99 = percentile(lat, 50), percentile(lat, 99)
    for name, value in (("p50_ms", p50), ("p99_ms", p99)):
        limit = slos.get(name)
        if limit is not None and value is not None and value > limit:
            violations.append(f"SLO {name}: {value:.1f} ms > {limit} ms")
    rtos = recovery_times(history)
    rto = max(rtos) if rtos else None
    if slos.get("max_rto_s") is not None and rto is not None and rto > slos["max_rto_s"]:
        violations.append(f"SLO max_rto_s: recovery took {rto:.2f} s > {slos['max_rto_s']} s")
    switches = recovery_times(history, disruptive=False)
    switch = max(switches) if switches else None
    limit = slos.get("max_switch_s")
    if limit is not None and switch is not None and switch > limit:
        violations.append(f"SLO max_switch_s: a planned switch took {switch:.2f} s > {limit} s")
    global_back = global_back_times(history)
    limit = slos.get("max_reprotect_s")
    for home, seconds in global_back.items():
        if limit is not None and seconds > limit:
            violations.append(
                f"SLO max_reprotect_s: GLOBAL submits of {home} were acknowledged again "
                f"{seconds:.2f} s after the region loss > {limit} s"
            )
    ratio = len(acked) / len(history.ops) if history.ops else 1.0
    if slos.get("min_ack_ratio") is not None and ratio < slos["min_ack_ratio"]:
        violations.append(f"SLO min_ack_ratio: {ratio:.3f} < {slos['min_ack_ratio']}")
    lags = [s.seconds for s in history.lags if math.isfinite(s.seconds)]
    quiet = [s.seconds for s in history.lags if not history.in_fault(s.at)]
    max_lag = max(lags) if lags else None
    if slos.get("max_mirror_lag_s") is not None and quiet and max(quiet) > slos["max_mirror_lag_s"]:
        violations.append(
            f"SLO max_mirror_lag_s: {max(quiet):.2f} s > {slos['max_mirror_lag_s']} s"
        )
    violations += steady_state(history, spec.get("steady_state", {}))
    violations += [
        f"fault step {f.step} ({f.fault}) did not apply: {f.detail}"
        for f in history.faults
        if f.detail.startswith("FAILED")
    ]
    recovery = recovery_by_home(history)
    violations += judge_execution(recovery, slos, lost_homes(history))
    violations += _first_run_after_rto(recovery, rto, slos.get("first_run_after_rto_s"))
    drain_violations, drain_notes = judge_drain(history, slos)
    violations += drain_violations
    unrecorded = sum(1 for e in history.execs if not e.db)
    notes = [f"{unrecorded} executions have no attempts row in any database"] if unrecorded else []
    notes += drain_notes
    return Verdict(
        ok=not violations,
        acknowledged=len(acked),
        sent=len(history.ops),
        errors=len(history.ops) - len(acked),
        executed=len(first_runs(history)),
        lost=lost,
        duplicates=dups,
        duplicated_tasks=dup_tasks,
        order_violations=order,
        p50_ms=p50,
        p99_ms=p99,
        rto_s=rto,
        switch_s=switch,
        global_back_s=global_back,
        max_mirror_lag_s=max_lag,
        violations=violations,
        notes=notes,
        recovery=recovery,
        rpo=predicted or [],
    )


def _first_run_after_rto(
    recovery: dict[str, HomeRecovery], rto: float | None, after: float | None
) -> list[str]:
    """Displaced homes must run tasks again soon after their submits recovered."""
    if after is None or rto is None:
        return []
    return [
        f"SLO first_run_after_rto_s: {home}'s tasks ran {s - rto:.2f} s after submits "
        f"recovered (RTO {rto:.2f} s) > {after} s"
        for home, r in recovery.items()
        for s in r.first_run_s
        if s > rto + after
    ]


def steady_state(history: History, spec: dict[str, Any]) -> list[str]:
    """The steady-state metric before the first fault (the baseline the hypothesis
    starts from); a scenario without faults measures the whole run."""
    first = min((f.start for f in history.faults), default=math.inf)
    ops = [o for o in history.ops if o.sent < first]
    if not ops:
        return []
    metric = spec.get("metric", "ack_ratio")
    if metric == "ack_ratio":
        value = sum(1 for o in ops if o.acked is not None) / len(ops)
    else:
        value = percentile([o.latency_ms for o in ops if o.latency_ms is not None], 99) or 0.0
    out = []
    if spec.get("at_least") is not None and value < spec["at_least"]:
        out.append(f"steady state {metric} = {value:.3f} < {spec['at_least']} before any fault")
    if spec.get("at_most") is not None and value > spec["at_most"]:
        out.append(f"steady state {metric} = {value:.3f} > {spec['at_most']} before any fault")
    return out
