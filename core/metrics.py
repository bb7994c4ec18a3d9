"""Every Prometheus metric family homeport exports, declared in this one module: the
engine's (`Metrics`), the gateway's (`GatewayMetrics`) and the multi-region layer's
(`RegionsFamilies`, whose behaviour is `regions.metrics.RegionsMetrics`). Each process
registers them on a registry it owns (no globals). One place keeps the names, help
texts and labels consistent for the dashboards and alerts (`observe`) that query them.

Engine metrics:

Labels: `region` and `partition` (the partition number) where the value is per partition;
loops and the record writer are per process. Everything a background loop swallows is
counted in `loop_errors_total`.
"""

from __future__ import annotations

import bisect
import math
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_RP = ("region", "partition")
_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
# Slot hold time, for calibrating the capacity model (docs/simulation.md): fine geometric
# buckets (x1.2 from 0.25 ms to about 14 s) so the model's service-time fit is not
# blurred by wide buckets; labelled by region only, as the slots are worker-wide.
SLOT_HOLD_BUCKETS = tuple(round(0.00025 * 1.2**i, 7) for i in range(61))


class Metrics:
    """Every metric the engine exports; create one per process and share it."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.enqueued = Counter(
            "homeport_enqueued", "Tasks accepted into a stream or the delayed set", _RP, registry=r
        )
        self.duplicate_submits = Counter(
            "homeport_duplicate_submits", "Submits answered from the dedup window", _RP, registry=r
        )
        self.fenced = Counter(
            "homeport_fenced", "Writes refused for a stale epoch or lease token", _RP, registry=r
        )
        # By durability, so GLOBAL refusals (a standby mirror that does not ack) stand
        # apart from an in-region replica's; three values, bounded.
        self.not_replicated = Counter(
            "homeport_not_replicated",
            "Submits not acknowledged because WAIT saw too few replicas",
            (*_RP, "durability"),
            registry=r,
        )
        self.started = Counter("homeport_started", "Handler executions started", _RP, registry=r)
        self.succeeded = Counter(
            "homeport_succeeded", "Tasks finished successfully", _RP, registry=r
        )
        self.failed = Counter("homeport_failed", "Attempts that raised", _RP, registry=r)
        self.retried = Counter(
            "homeport_retried", "Failed attempts scheduled again", _RP, registry=r
        )
        self.dead = Counter(
            "homeport_dead", "Tasks moved to the dead-letter stream", _RP, registry=r
        )
        self.cancelled = Counter(
            "homeport_cancelled", "Tasks skipped because cancelled before start", _RP, registry=r
        )
        self.duplicate_executions = Counter(
            "homeport_duplicate_executions",
            "Executions of an entry whose handler had already been started by an earlier delivery",
            _RP,
            registry=r,
        )
        self.undecodable = Counter(
            "homeport_undecodable_entries",
            "Stream entries that were no task blob of a known version, dead-lettered and acked"
            " (reason: decode or version)",
            (*_RP, "reason"),
            registry=r,
        )
        self.reclaimed = Counter(
            "homeport_reclaimed",
            "Pending entries taken over from a previous partition owner",
            _RP,
            registry=r,
        )
        self.forwarded = Counter(
            "homeport_forwarded", "Delayed tasks moved into the stream", _RP, registry=r
        )
        self.trimmed = Counter(
            "homeport_trimmed", "Acknowledged entries trimmed from the stream", _RP, registry=r
        )
        self.queue_depth = Gauge(
            "homeport_queue_depth",
            "Entries per state (ready, pending, delayed)",
            (*_RP, "state"),
            registry=r,
        )
        self.oldest_pending_age = Gauge(
            "homeport_oldest_pending_age_seconds",
            "Age of the oldest delivered-but-unacked entry",
            _RP,
            registry=r,
        )
        self.oldest_waiting_age = Gauge(
            "homeport_oldest_waiting_age_seconds",
            "Age of the oldest entry not yet delivered to a worker (0 when none waits)",
            _RP,
            registry=r,
        )
        self.latency = Histogram(
            "homeport_end_to_end_latency_seconds",
            "From ready (enqueue or due time) to handler start",
            _RP,
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.slot_hold = Histogram(
            "homeport_slot_hold_seconds",
            "From taking a handler slot (before the begin step) to giving it back "
            "(handler end): the service time a capacity model must use",
            ("region",),
            buckets=SLOT_HOLD_BUCKETS,
            registry=r,
        )
        self.record_lag = Gauge(
            "homeport_record_writer_lag_seconds",
            "Age of the oldest record not yet written to PostgreSQL",
            registry=r,
        )
        self.records_written = Counter(
            "homeport_records_written", "Rows written to the record store", ("table",), registry=r
        )
        self.record_write_failures = Counter(
            "homeport_record_write_failures",
            "Record-store batch writes that failed (each is retried)",
            registry=r,
        )
        self.loop_errors = Counter(
            "homeport_loop_errors",
            "Errors caught and logged by background loops",
            ("loop",),
            registry=r,
        )
        self.owned_partitions = Gauge(
            "homeport_owned_partitions",
            "Partitions this worker holds the lease of",
            ("region",),
            registry=r,
        )
        self.inflight = Gauge("homeport_inflight", "Handlers running now", ("region",), registry=r)
        # inflight / slots is the worker's saturation; both per process, labelled by the
        # home region the worker consumes.
        self.slots = Gauge(
            "homeport_worker_slots",
            "Handlers this worker may run at once (its concurrency)",
            ("region",),
            registry=r,
        )
        # The fetch budget (`concurrency + prefetch` entries read but not yet released)
        # and two running totals, read at scrape time: the unit-seconds it was held and
        # the units given back. rate(held) / rate(released) is the mean fetch hold: read
        # to release, the finish (record write, ack) included. A worker whose budget is
        # full completes budget / fetch hold tasks a second at most (`regions.loadmeter`).
        self.fetch_budget = Gauge(
            "homeport_fetch_budget",
            "Entries this worker may hold read but unreleased (concurrency + prefetch)",
            ("region",),
            registry=r,
        )
        self.fetch_held = Gauge(
            "homeport_fetch_budget_held_seconds",
            "Running total of fetch-budget unit-seconds held (use rate())",
            ("region",),
            registry=r,
        )
        self.fetch_released = Gauge(
            "homeport_fetch_budget_released",
            "Running total of fetch-budget units given back (use rate())",
            ("region",),
            registry=r,
        )
        # Set once by a worker the agent started (`regions.workforce`): seconds from its
        # spawn until it could serve, the time spent parked excluded (`regions.loadmeter`
        # reports it for the capacity check's scale-up delay).
        self.boot = Gauge(
            "homeport_worker_boot_seconds",
            "Seconds from this worker's spawn until it could serve, parked time excluded",
            ("region",),
            registry=r,
        )
        self.start_time = Gauge(
            "homeport_worker_start_seconds",
            "Seconds this worker's start took (connect, register, loops, admin server; "
            "the record store's connection not counted): what a booted parked or "
            "prepared worker still does before it serves",
            ("region",),
            registry=r,
        )
        self.start_cpu = Gauge(
            "homeport_worker_start_cpu_seconds",
            "CPU seconds of the same start (not inflated by other processes starting "
            "at the same time, as the wall time is at a cluster's start-up)",
            ("region",),
            registry=r,
        )

    def value(self, name: str, **labels: str) -> float:
        """Current value of a sample, summed over label sets matching `labels` (tests)."""
        total = 0.0
        for metric in self.registry.collect():
            for s in metric.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    total += s.value
        return total


_PAIR = ("home", "standby")


class RegionsFamilies:
    """The multi-region layer's metrics (agents, controllers): routing gauges are exported
    by every agent from the table it reads, so aggregate them with `max by (home)`; labels
    are region names only. Behaviour in `regions.metrics.RegionsMetrics`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.mirror_lag_bytes = Gauge(
            "homeport_mirror_lag_bytes",
            "Replication offset gap between a home primary and its cross-region mirror",
            _PAIR,
            registry=r,
        )
        self.mirror_lag_seconds = Gauge(
            "homeport_mirror_lag_seconds",
            "Age of the newest heartbeat the mirror holds, relative to the primary's",
            _PAIR,
            registry=r,
        )
        self.mirror_link_up = Gauge(
            "homeport_mirror_link_up",
            "1 when the mirror's replication link is up",
            _PAIR,
            registry=r,
        )
        self.region_reachable = Gauge(
            "homeport_region_reachable",
            "1 when this observer reached the target region's primary in the last probe",
            ("observer", "target"),
            registry=r,
        )
        self.promotions = Counter(
            "homeport_promotions",
            "Failovers performed by this controller",
            ("home", "to"),
            registry=r,
        )
        # Counted where it is seen, not where it is done: a failback is an operator's
        # command in a short-lived process, so each agent counts routes returning home.
        self.failbacks = Counter(
            "homeport_failbacks",
            "Routes this agent saw return to their home region (failbacks)",
            ("home",),
            registry=r,
        )
        self.route_epoch = Gauge(
            "homeport_route_epoch",
            "Epoch of each home's route, as this agent read it",
            ("home",),
            registry=r,
        )
        self.route_serving = Gauge(
            "homeport_route_serving",
            "1 for the region that serves each home, per the routing table",
            ("home", "region"),
            registry=r,
        )
        self.route_failed_over = Gauge(
            "homeport_route_failed_over",
            "1 while a home is served by a region other than itself",
            ("home",),
            registry=r,
        )
        self.orphans = Counter(
            "homeport_orphans_recovered",
            "Entries found only on an old home at failback and re-enqueued",
            ("home",),
            registry=r,
        )
        self.protections = Counter(
            "homeport_protections",
            "Spares this controller lent to a home that lost its cross-region replica",
            ("home",),
            registry=r,
        )
        # The capacity check before a promotion (regions.capacity): promotions whose
        # standby the model judged unable to absorb the home (promoted anyway), and the
        # workers the model asked the standby for.
        self.undersized = Counter(
            "homeport_promotion_undersized",
            "Promotions to a standby the capacity model judged unable to absorb the home",
            ("home", "to"),
            registry=r,
        )
        self.workers_ordered = Gauge(
            "homeport_capacity_workers_ordered",
            "Worker processes the capacity check ordered the standby to run for the home",
            ("home", "to"),
            registry=r,
        )


# Submit latency on loopback sits around a millisecond; a slow WAIT for GLOBAL or a
# stalled Redis pushes it to the RPC deadline, so the buckets span both.
_SUBMIT_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class GatewayMetrics:
    """The gateway's metrics, on the process's registry (shared with the engine's
    `Metrics`, so one /metrics page shows both)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.tasks = Counter(
            "homeport_gateway_tasks",
            "Tasks received by Submit/SubmitBatch, by outcome",
            ("outcome",),
            registry=registry,
        )
        self.errors = Counter(
            "homeport_gateway_errors",
            "Domain errors answered, by code",
            ("code",),
            registry=registry,
        )
        self.refused = Counter(
            "homeport_gateway_auth_refused",
            "Calls refused by authentication, by method and status",
            ("method", "status"),
            registry=registry,
        )
        self.submit_seconds = Histogram(
            "homeport_gateway_submit_duration_seconds",
            "Time to answer a Submit or SubmitBatch call, refusals included",
            ("method",),
            buckets=_SUBMIT_BUCKETS,
            registry=registry,
        )


def observe_many(child: Any, values: list[float]) -> None:
    """Observe many values in a histogram child at once (a batch's): one add per bucket
    and one to the sum instead of a locked add pair per value. Uses prometheus_client's
    bucket list (pinned below 1); falls back to `observe` per value if it changed."""
    if not values:
        return
    bounds = getattr(child, "_upper_bounds", None)
    buckets = getattr(child, "_buckets", None)
    total = getattr(child, "_sum", None)
    if bounds is None or buckets is None or total is None or len(values) < 4:
        for v in values:
            child.observe(v)
        return
    counts: dict[int, int] = {}
    for v in values:
        i = bisect.bisect_left(bounds, v)
        counts[i] = counts.get(i, 0) + 1
    for i, n in counts.items():
        buckets[i].inc(n)
    total.inc(math.fsum(values))
