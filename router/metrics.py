"""Timing of the gateway's RPC handlers. The gateway's metrics themselves are declared
with every other family in `core.metrics` (`GatewayMetrics`)."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


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
