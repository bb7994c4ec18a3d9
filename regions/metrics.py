"""Prometheus metrics of the multi-region layer, registered on the process's registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

_PAIR = ("home", "standby")


class RegionsMetrics:
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
        self.failbacks = Counter(
            "homeport_failbacks", "Failbacks performed by this controller", ("home",), registry=r
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
