"""Capacity-checked promotion: before promoting a standby, ask a capacity model whether
it can absorb the home's measured load within the topology's SLO (`capacity:` in the
topology, `topology.CapacityPolicy`).

Terms:
- *load report*: what one region's agent measured of one home it runs workers for
  (`LoadReport`): the rate its workers finished tasks at and their mean slot hold time
  (from the workers' `homeport_slot_hold_seconds`), and how many workers of how many
  slots it runs. Written to etcd every few seconds by `regions.loadmeter`, under
  `<prefix>/load/<home>/<region>`; a dead home's last report stays, which is the load
  the standby must now take.
- *capacity model*: a function `AbsorbQuestion -> AbsorbAnswer`. `regions` may not
  import `simulation` (design §1a), so `homeport agent` loads one by name
  (`--capacity-model`, default `homeport.simulation.absorb:answer`, an Erlang C check in
  pure Python that needs no extra) and hands it to the controller.
- *scale order*: the controller's instruction to the standby's agent to run `workers`
  processes for `home` while the route is at `epoch` (`<prefix>/scale/<home>`); a
  failback moves the epoch on, so an order never outlives its failover.

The decision never blocks a promotion: a missing report, a model error or a "no" all
promote (availability first); a "no" raises `homeport_promotion_undersized` (alert
`PromotedStandbyUndersized`) and writes a scale order. Every decision is kept in the
promotion's failover history record (`history.FailoverEvent.capacity`).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from typing import Any

import aetcd
from homeport.core.membership import FRESH_POLL_S
from homeport.regions.topology import CapacityPolicy, Topology

log = logging.getLogger(__name__)

STALE_REPORT_S = 300.0
"""A load report older than this (seconds) is too old to plan on: the check is skipped."""


@dataclass(frozen=True)
class AbsorbQuestion:
    """Can `standby`'s `workers` (of `concurrency` slots) serve `home`'s `partitions` at
    `rate_per_s`, each task holding a slot `hold_mean_s` (`LoadReport.service_hold_s`),
    after `outage_s` of backlog?"""

    home: str
    standby: str
    rate_per_s: float
    hold_mean_s: float
    workers: int
    concurrency: int
    partitions: int
    outage_s: float
    p99_wait_target_s: float
    max_drain_s: float
    max_workers: int
    # Seconds from the scale order until added workers serve (`scale_delay`: measured
    # by the standby's agent, else the topology's `capacity.scale_delay_s`); the drain
    # with more workers runs on the current ones until then. 0 = at once.
    scale_delay_s: float = 0.0
    # Added workers up to this many are prepared (booted, idle) and serve after
    # `prepared_delay_s` instead.
    prepared_workers: int = 0
    prepared_delay_s: float = 0.0
    # Mean seconds from the route's move until the outage's submissions arrive (the
    # clients' next retry: `client_return`). 0 = present at once.
    client_return_s: float = 0.0


@dataclass(frozen=True)
class AbsorbAnswer:
    """`ok`: the standby can absorb as it is. `workers_needed`: the planner's count for
    the standby's group (its current count when `ok`). The figures are those of the
    current workers; `after_*` those with `workers_needed` (NaN when no scale-up)."""

    ok: bool
    reason: str
    workers_needed: int
    utilisation: float
    p99_wait_s: float
    drain_s: float
    after_p99_wait_s: float = float("nan")
    after_drain_s: float = float("nan")


CapacityModel = Callable[[AbsorbQuestion], AbsorbAnswer]


@dataclass(frozen=True)
class LoadReport:
    """What `region`'s agent measured of the workers it runs for `home` (see the module
    docstring); `at` is unix seconds, `window_s` the span the rate was measured over."""

    home: str
    region: str
    rate_per_s: float
    hold_mean_s: float
    workers: int
    concurrency: int
    parked: bool
    window_s: float
    at: float
    # Median seconds this region's live workers took from spawn to serving (parked
    # time excluded; 0 = none measured yet), and their membership heartbeat (Settings).
    boot_s: float = 0.0
    start_s: float = 0.0  # median of their `start()`: what a booted (prepared) one still does
    start_cpu_s: float = 0.0  # median CPU seconds of that start (0 = an older agent's report)
    heartbeat_s: float = 0.0
    reserves: int = 0  # prepared workers this region keeps for the home (booted, idle)
    # Mean seconds from reading an entry to releasing its fetch-budget unit (record
    # written, ack queued), and the workers' budget (concurrency + prefetch); 0 = unknown.
    fetch_hold_s: float = 0.0
    fetch_budget: int = 0

    @property
    def service_hold_s(self) -> float:
        """The slot time one task costs a saturated worker: its slot hold, or, when the
        fetch budget binds first, the fetch hold per slot. A worker completes at most
        `concurrency / hold_mean_s` and `fetch_budget / fetch_hold_s` tasks a second; with
        no prefetch the budget equals the slots and is held through each task's record
        write too, so a slot idles from its handler's end until the next entry is read."""
        if self.fetch_budget <= 0 or self.fetch_hold_s <= 0:
            return self.hold_mean_s
        return max(self.hold_mean_s, self.fetch_hold_s * self.concurrency / self.fetch_budget)

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def decode(cls, raw: bytes) -> LoadReport:
        # Fields a newer agent added are left out: agents of two versions may share etcd
        # during an upgrade (the ones this version added have defaults for older ones).
        data = json.loads(raw)
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def scale_delay(standby: LoadReport, policy: CapacityPolicy) -> float:
    """Seconds from a scale order until an added worker of `standby`'s region serves.

    Measured when the standby's agent has measured a boot: the agent starts the worker
    as soon as its watch delivers the order (`Agent._watch_orders`), the worker boots
    (spawn, imports, Redis and PostgreSQL: the region's measured median `boot_s`), then
    takes its partitions over (`take_over_s`). Without a measured boot: the topology's
    `capacity.scale_delay_s`. A prepared worker (`LoadReport.reserves`) has booted
    already: `prepared_delay`."""
    if standby.boot_s <= 0:
        return policy.scale_delay_s
    return standby.boot_s + take_over_s(standby)


def take_over_s(standby: LoadReport) -> float:
    """Mean seconds from a started worker's registration until it serves: the manager's
    next rebalance comes within a heartbeat (half of one on average); then a joining
    worker takes each partition moved to it within `core.membership.FRESH_POLL_S` of
    the assignment or of its old owner's release, which waits for that partition's
    running handlers (tens of milliseconds for short tasks): one `FRESH_POLL_S` in all.
    Before the eleventh session a joiner looked only at its next heartbeat, and a lease
    still held at that look cost it another: one heartbeat was the mean then."""
    return standby.heartbeat_s / 2 + FRESH_POLL_S


def client_return(policy: CapacityPolicy) -> float:
    """Mean seconds from the route's move until a client that kept retrying through the
    outage resends: the residual of its backoff. After a few failures the SDK's backoff
    is its cap times a jitter uniform in [0.5, 1) (`core.retry.equal_jitter`); the move
    falls in one such sleep, picked in proportion to its length, and leaves on average
    E[X^2] / 2E[X] = (7/12) / (2 * 3/4) = 7/18 of the cap (0.39 s for the SDK's 1 s)."""
    return policy.client_backoff_cap_s * 7 / 18


def prepared_delay(standby: LoadReport) -> float:
    """Seconds from a scale order until a prepared worker serves: its `go` goes out at
    once, it starts (register, its loops, the admin server) and takes partitions like any
    added worker (`take_over_s`). The start counts its
    measured CPU seconds (`start_cpu_s`, the region's median): the live workers measured
    theirs at the cluster's start-up, when every process of the cluster started at once
    and the wall time (`start_s`, used for reports without the CPU figure) ran 3-10
    times the 0.3-0.8 s a prepared worker's start took at a failover (issue 20's game
    days, docs/failover-model.md)."""
    return (standby.start_cpu_s or standby.start_s) + take_over_s(standby)


@dataclass(frozen=True)
class ScaleOrder:
    """Run `workers` processes for `home` in `region` while `home`'s route is at `epoch`."""

    home: str
    region: str
    workers: int
    epoch: int
    reason: str
    at: float

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def decode(cls, raw: bytes) -> ScaleOrder:
        return cls(**json.loads(raw))


def _key(prefix: str, *parts: str) -> bytes:
    return "/".join([prefix.rstrip("/"), *parts]).encode()


async def publish_report(client: aetcd.Client, prefix: str, report: LoadReport) -> None:
    await client.put(_key(prefix, "load", report.home, report.region), report.encode())


async def read_reports(client: aetcd.Client, prefix: str, home: str) -> dict[str, LoadReport]:
    """`home`'s load reports by reporting region; unreadable ones are skipped."""
    found = {}
    for kv in await client.get_prefix(_key(prefix, "load", home) + b"/"):
        try:
            report = LoadReport.decode(kv.value)
        except (ValueError, TypeError) as exc:
            log.warning("skipping unreadable load report %r: %s", kv.key, exc)
            continue
        found[report.region] = report
    return found


async def write_order(client: aetcd.Client, prefix: str, order: ScaleOrder) -> None:
    await client.put(_key(prefix, "scale", order.home), order.encode())


async def read_orders(client: aetcd.Client, prefix: str) -> dict[str, ScaleOrder]:
    """Every scale order, by home; unreadable ones are skipped."""
    found = {}
    for kv in await client.get_prefix(_key(prefix, "scale") + b"/"):
        try:
            order = ScaleOrder.decode(kv.value)
        except (ValueError, TypeError) as exc:
            log.warning("skipping unreadable scale order %r: %s", kv.key, exc)
            continue
        found[order.home] = order
    return found


async def watch_orders(client: aetcd.Client, prefix: str) -> AsyncIterator[ScaleOrder]:
    """Every scale order as it is written, until the caller stops iterating (or the
    watch fails: the caller reconnects); unreadable ones are skipped."""
    watch = await client.watch_prefix(_key(prefix, "scale") + b"/")
    try:
        async for event in watch:
            if event.kind != aetcd.EventKind.PUT:
                continue
            try:
                yield ScaleOrder.decode(event.kv.value)
            except (ValueError, TypeError) as exc:
                log.warning("skipping unreadable scale order %r: %s", event.kv.key, exc)
    finally:
        await watch.cancel()


@dataclass(frozen=True)
class CapacityDecision:
    """What the check found before promoting `home` to `standby`; kept in the history.
    `verdict`: "ok", "undersized" or "unknown" (no usable report, or the model failed;
    the promotion went ahead unchecked)."""

    standby: str
    verdict: str
    reason: str
    rate_per_s: float = 0.0
    hold_mean_s: float = 0.0
    workers: int = 0
    workers_ordered: int = 0
    p99_wait_s: float = 0.0
    drain_s: float = 0.0
    outage_s: float = 0.0
    # With `workers_ordered` workers (NaN when none were ordered): the drain time an
    # undersized-standby game day holds the measured drain to.
    after_drain_s: float = float("nan")
    # The scale-up delay that drain counted (`scale_delay`), and the standby's measured
    # worker boot it came from (0 = none measured: the topology's figure was used).
    scale_delay_s: float = 0.0
    boot_s: float = 0.0
    prepared: int = 0  # the standby's prepared workers (booted, idle) for the home

    def describe(self) -> dict[str, Any]:
        return {
            k: None if isinstance(v, float) and not math.isfinite(v) else v
            for k, v in asdict(self).items()
        }


def question(
    topology: Topology,
    home: str,
    standby: str,
    reports: dict[str, LoadReport],
    now: float,
    served_by: str | None = None,
    down_since: float | None = None,
) -> AbsorbQuestion | str:
    """The model's question from `home`'s reports, or why none can be asked. The load is
    what the workers serving `home` measured: `served_by`'s (after a failover) when it
    reported as serving, else the home region's own.

    The outage, whose submissions make the backlog, runs from `down_since` (the
    judgement's earliest 'unreachable' probe, `health.Judgement.since`) when given, else
    from the home's last report. Reports come every 2 s, so the last one is on average a
    second older than the loss: with it alone the backlog came out about a second of load
    too large, and the predicted drain 0.7-1 s too long in the undersized-standby game
    day (docs/failover-model.md)."""
    policy: CapacityPolicy = topology.capacity_policy
    served = reports.get(served_by or home)
    if served_by is not None and (served is None or served.parked):
        served = reports.get(home)
    if served is None or served.parked or served.at < now - STALE_REPORT_S:
        return f"no recent load report of {home}'s own workers"
    if served.hold_mean_s <= 0:
        return f"{home}'s last report measured no slot hold time (no tasks ran)"
    waiting = reports.get(standby)
    if waiting is None or waiting.at < now - STALE_REPORT_S:
        return f"no recent report of {standby}'s workers for {home}"
    return AbsorbQuestion(
        home=home,
        standby=standby,
        rate_per_s=served.rate_per_s,
        hold_mean_s=served.service_hold_s,
        workers=waiting.workers,
        concurrency=waiting.concurrency,
        partitions=topology.region(home).partitions,
        # The home stopped serving when it was lost: its backlog has built up since.
        outage_s=max(0.0, now - max(served.at, down_since or 0.0)),
        p99_wait_target_s=policy.p99_wait_s,
        max_drain_s=policy.max_drain_s,
        max_workers=max(policy.max_workers, waiting.workers),
        scale_delay_s=scale_delay(waiting, policy),
        prepared_workers=waiting.reserves,
        prepared_delay_s=prepared_delay(waiting),
        client_return_s=client_return(policy),
    )


async def decide(
    client: aetcd.Client,
    topology: Topology,
    home: str,
    standby: str,
    model: CapacityModel,
    served_by: str | None = None,
    down_since: float | None = None,
) -> CapacityDecision:
    """Ask `model` whether `standby` can absorb `home` (see the module docstring);
    `down_since` as in `question`."""
    reports = await read_reports(client, topology.etcd_prefix, home)
    asked = question(topology, home, standby, reports, time.time(), served_by, down_since)
    if isinstance(asked, str):
        return CapacityDecision(standby, "unknown", asked)
    try:
        got = model(asked)
    except Exception as exc:  # noqa: BLE001 - a broken model must not stop a promotion
        log.warning("capacity model failed for %s -> %s: %s", home, standby, exc)
        return CapacityDecision(standby, "unknown", f"capacity model failed: {exc}")
    return CapacityDecision(
        standby=standby,
        verdict="ok" if got.ok else "undersized",
        reason=got.reason,
        rate_per_s=asked.rate_per_s,
        hold_mean_s=asked.hold_mean_s,
        workers=asked.workers,
        workers_ordered=0 if got.ok else got.workers_needed,
        p99_wait_s=got.p99_wait_s,
        drain_s=got.drain_s,
        outage_s=asked.outage_s,
        after_drain_s=got.after_drain_s,
        scale_delay_s=asked.prepared_delay_s
        if 0 < got.workers_needed - asked.workers <= asked.prepared_workers
        else asked.scale_delay_s,
        boot_s=reports[standby].boot_s,
        prepared=asked.prepared_workers,
    )
