"""What the multi-region layer does with its Prometheus metrics (declared with every
other family in `core.metrics.RegionsFamilies`): counters created at zero, the routing
table exported. The routing gauges are exported by every agent from the table it reads,
so each appears once per agent: aggregate them with `max by (home)`."""

from __future__ import annotations

from collections.abc import Mapping

from homeport.core.metrics import RegionsFamilies
from homeport.regions.routing import Route
from homeport.regions.topology import Topology
from prometheus_client import CollectorRegistry


class RegionsMetrics(RegionsFamilies):
    """The multi-region metrics (declared in `core.metrics.RegionsFamilies`) and what
    the agent does with them: counters created at zero, routes exported."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry)
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
