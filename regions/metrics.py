"""Prometheus metrics of the multi-region layer, registered on the process's registry.

The routing gauges are exported by every agent from the table it reads, so each appears
once per agent: aggregate them with `max by (home)`. Labels are region names only.
"""

from __future__ import annotations

from collections.abc import Mapping

from homeport.regions.routing import Route
from homeport.regions.topology import Topology
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
        self._routes: dict[str, Route] = {}

    def start(self, topology: Topology) -> None:
        """Create every home's counters at zero, so the first promotion or failback is an
        increase Prometheus can see (a series born at 1 shows no `increase`)."""
        for region in topology.regions:
            if region.standby is not None:
                self.promotions.labels(region.name, region.standby)
                self.undersized.labels(region.name, region.standby)
            self.failbacks.labels(region.name)

    def observe_routes(self, routes: Mapping[str, Route]) -> None:
        """Export the routing table just read, and count routes that came back home."""
        for home, route in routes.items():
            before = self._routes.get(home)
            if before is not None and before.serving != route.serving:
                self.route_serving.remove(home, before.serving)
                if route.serving == home:
                    self.failbacks.labels(home).inc()
            self.route_epoch.labels(home).set(route.epoch)
            self.route_serving.labels(home, route.serving).set(1)
            self.route_failed_over.labels(home).set(int(route.serving != home))
        self._routes = dict(routes)
