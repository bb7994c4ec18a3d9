"""`Loop`: the shape of every background loop (`start()`, `stop()`, `run_once()`).

A loop calls `run_once()`, sleeps what it returns (or its interval, cut short by
`wake()`), and repeats. Errors
are counted in `homeport_loop_errors{loop=...}` and logged quietly (`core.retry.warn_repeated`:
the first three in a row, then every hundredth); the loop carries on.
Tests call `run_once()` directly to drive one step.
"""

from __future__ import annotations

import asyncio
import logging

from homeport.core.metrics import Metrics
from homeport.core.retry import warn_repeated

log = logging.getLogger(__name__)


class Loop:
    """Base of the engine's background loops; subclasses implement `run_once`."""

    name = "loop"

    def __init__(self, interval_s: float, metrics: Metrics) -> None:
        self.interval_s = interval_s
        self.metrics = metrics
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        # Set by `stop()` and `wake()`: ends the sleep between two steps early.
        self._wake = asyncio.Event()
        self._failures = 0

    async def run_once(self) -> float | None:
        """Do one step; return seconds to sleep before the next (None = the interval)."""
        raise NotImplementedError

    def start(self) -> None:
        self._stop.clear()
        self._task = asyncio.create_task(self._run(), name=self.name)

    def wake(self) -> None:
        """Run the next step now rather than after the sleep: another loop of the same
        process changed what this one acts on (a new assignment for `Membership`)."""
        self._wake.set()

    async def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        while not self._stop.is_set():
            delay: float | None = None
            try:
                delay = await self.run_once()
                self._failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a loop survives any step failure
                self._failures += 1
                self.metrics.loop_errors.labels(self.name).inc()
                warn_repeated(log, f"{self.name} step", self._failures, exc)
            sleep = self.interval_s if delay is None else max(0.0, delay)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=sleep)
            except TimeoutError:
                pass
            self._wake.clear()
