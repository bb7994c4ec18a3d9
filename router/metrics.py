"""The gateway's Prometheus metrics, on the process's registry (shared with the engine's
`core.metrics.Metrics`, so one /metrics page shows both)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class GatewayMetrics:
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
