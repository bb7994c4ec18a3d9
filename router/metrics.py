"""The gateway's Prometheus metrics, on the process's registry (shared with the engine's
`core.metrics.Metrics`, so one /metrics page shows both)."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from prometheus_client import CollectorRegistry, Counter, Histogram

# Submit latency on loopback sits around a millisecond; a slow WAIT for GLOBAL or a
# stalled Redis pushes it to the RPC deadline, so the buckets span both.
_SUBMIT_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


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
        self.submit_seconds = Histogram(
            "homeport_gateway_submit_duration_seconds",
            "Time to answer a Submit or SubmitBatch call, refusals included",
            ("method",),
            buckets=_SUBMIT_BUCKETS,
            registry=registry,
        )


def timed(method: str) -> Callable[[F], F]:
    """Observe an RPC handler's duration in `submit_seconds{method}`; the handler's
    object holds the metrics as `_metrics`. Aborts are timed too: a caller waited."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        async def run(self: Any, request: Any, context: Any) -> Any:
            started = time.perf_counter()
            try:
                return await fn(self, request, context)
            finally:
                elapsed = time.perf_counter() - started
                self._metrics.submit_seconds.labels(method).observe(elapsed)

        return cast(F, run)

    return wrap
