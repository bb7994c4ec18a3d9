"""What every contender provides to the benchmark driver."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable


class Contender:
    """One queue under test: how to enqueue no-op tasks and how to start its worker.

    `submit(n, stamped, rate)` enqueues `n` tasks through the queue's ordinary client.
    Unstamped tasks carry 0.0; stamped ones carry `time.time()` taken just before each
    enqueue call, and a `rate` (tasks/s) paces them. `probe()` enqueues one warm-up task
    (stamp -1). `changed` lists every setting changed from the queue's defaults.
    """

    name = "contender"
    changed: tuple[str, ...] = ()

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url

    def setup(self) -> None:
        """Start what the contender needs besides its worker (homeport: a gateway)."""

    def teardown(self) -> None:
        """Stop what `setup` started."""

    def worker_cmd(self) -> list[str]:
        raise NotImplementedError

    def submit(self, n: int, stamped: bool = False, rate: float | None = None) -> None:
        raise NotImplementedError

    def probe(self) -> None:
        raise NotImplementedError

    def version(self) -> str:
        return ""


class OneRunContender(Contender):
    """A contender whose every enqueue goes through `_run(n, stamped, rate, stamp)`:
    `stamp` is None for a submit of `n` tasks, else the stamp of one probe task."""

    def _run(self, n: int, stamped: bool, rate: float | None, stamp: float | None) -> None:
        raise NotImplementedError

    def submit(self, n: int, stamped: bool = False, rate: float | None = None) -> None:
        self._run(n, stamped, rate, None)

    def probe(self) -> None:
        self._run(1, False, None, -1.0)


def python_m(*args: str) -> list[str]:
    return [sys.executable, "-m", *args]


def paced(n: int, stamped: bool, rate: float | None, send: Callable[[float], object]) -> None:
    """Call `send(stamp)` n times, paced at `rate`/s when given (a sync client's loop)."""
    began = time.perf_counter()
    for i in range(n):
        if rate:
            delay = began + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)  # pacing the light-load latency run
        send(time.time() if stamped else 0.0)


async def apaced(
    n: int,
    stamped: bool,
    rate: float | None,
    send: Callable[[float], Awaitable[object]],
    fan_out: int = 100,
) -> None:
    """Async clients: paced one by one at `rate`, else `fan_out` enqueues in flight."""
    if rate:
        began = time.perf_counter()
        for i in range(n):
            delay = began + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await send(time.time() if stamped else 0.0)
        return
    for lo in range(0, n, fan_out):
        await asyncio.gather(*(send(0.0) for _ in range(min(fan_out, n - lo))))
