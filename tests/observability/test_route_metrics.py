"""What agents export from the routing table: the serving region and epoch of each home,
failovers as a state, and failbacks counted once per route that returns home."""

from __future__ import annotations

from homeport.core.metrics import Metrics
from homeport.regions.metrics import RegionsMetrics
from homeport.regions.routing import Route
from prometheus_client import CollectorRegistry


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    for metric in registry.collect():
        for s in metric.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


def test_routes_export_serving_region_epoch_and_count_failbacks() -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    rm = RegionsMetrics(registry)
    home = {"us-east": Route("us-east", "us-east", 1), "eu-west": Route("eu-west", "eu-west", 1)}
    away = {**home, "us-east": Route("us-east", "eu-west", 2, copy="mirror")}
    back = {**home, "us-east": Route("us-east", "us-east", 3)}

    rm.observe_routes(home)
    assert _value(registry, "homeport_route_serving", home="us-east", region="us-east") == 1
    assert _value(registry, "homeport_route_failed_over", home="us-east") == 0

    rm.observe_routes(away)
    rm.observe_routes(away)
    assert _value(registry, "homeport_route_serving", home="us-east", region="us-east") is None
    assert _value(registry, "homeport_route_serving", home="us-east", region="eu-west") == 1
    assert _value(registry, "homeport_route_epoch", home="us-east") == 2
    assert _value(registry, "homeport_route_failed_over", home="us-east") == 1
    assert _value(registry, "homeport_failbacks_total", home="us-east") is None

    rm.observe_routes(back)
    rm.observe_routes(back)
    assert _value(registry, "homeport_failbacks_total", home="us-east") == 1
    assert _value(registry, "homeport_route_failed_over", home="us-east") == 0
    assert _value(registry, "homeport_route_epoch", home="us-east") == 3
