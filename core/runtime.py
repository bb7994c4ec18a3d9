"""`WorkerRuntime`: what every partition consumer of one worker shares (the app, the
broker, the record writer, the fetch budget and the handler slots), `Slots`, those
slots, and `Slot`, one task's hold on them. Set up by `core.worker.Worker`; used by
`core.consumer`."""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from homeport.core.app import App
from homeport.core.broker import Broker
from homeport.core.gate import Gate
from homeport.core.metrics import Metrics
from homeport.core.recorder import RecordWriter
from homeport.core.settings import Settings


class WorkerRuntime:
    """What every consumer of one worker shares (set up by `core.worker.Worker`)."""

    def __init__(
        self,
        *,
        worker_id: str,
        app: App,
        broker: Broker,
        settings: Settings,
        metrics: Metrics,
        recorder: RecordWriter,
        run_sync: Callable[[Callable[[], Any]], Awaitable[Any]],
        rng: random.Random,
    ) -> None:
        self.worker_id = worker_id
        self.app = app
        self.broker = broker
        self.settings = settings
        self.metrics = metrics
        self.recorder = recorder
        self.run_sync = run_sync
        self.rng = rng
        self.inflight = 0
        # Told of every retry this worker puts in a delayed set (zset key, due ms): the
        # forwarder's `notice`, so the retry is forwarded on time (set by the worker).
        self.on_delayed: Callable[[str, int], None] = lambda key, due_ms: None
        # Called when this worker starts consuming partitions it did not own (a start, a
        # rebalance, a dead peer's partitions): the forwarder's `wake`.
        self.on_acquired: Callable[[], None] = lambda: None
        self.gate = Gate()
        # Worker-wide budget of fetched-but-unfinished entries (`concurrency + prefetch`):
        # bounds memory and the number of coroutines, and so the event loop's cycle time
        # (lease renewals must not starve under load). The prefetch part keeps a freed
        # slot's next entry read ahead, so the slot does not idle through the finished
        # entry's record write, its ack and the next read.
        self.budget = settings.concurrency + settings.prefetch
        self.buffered = 0
        # Running totals for the fetch hold (`homeport_fetch_budget_*`): unit-seconds the
        # budget was held, and units given back. Their ratio over a window is the mean
        # time from an entry's read to its release (Little's law); the capacity check
        # divides the budget by it (`regions.loadmeter`).
        self.held_s = 0.0
        self.released = 0
        self._since = time.perf_counter()
        self.space = asyncio.Event()
        self.space.set()
        # The hard bound on tasks between begin and finish (handlers running at once).
        # The fetch budget above is soft: every partition's reader parks in a blocking
        # read of at least one entry, so up to one read per partition can land past it.
        self.slots = Slots(settings.concurrency)
        # Partition readers running now: a batch read takes at most its share of slots.
        self.readers = 0

    def _tick(self) -> None:
        now = time.perf_counter()
        self.held_s += self.buffered * (now - self._since)
        self._since = now

    def held_seconds(self) -> float:
        """Unit-seconds the fetch budget has been held, up to now (scrape time)."""
        self._tick()
        return self.held_s

    def take(self, n: int) -> None:
        self._tick()
        self.buffered += n
        if self.buffered >= self.budget:
            self.space.clear()

    def give(self) -> None:
        self._tick()
        self.buffered -= 1
        self.released += 1
        if self.buffered < self.budget:
            self.space.set()


class Slots:
    """A worker's handler slots: a counting semaphore from which a batch takes many at once.

    `acquire_up_to(n)` waits its turn (first come, first served) until a slot is free,
    then takes up to `n` of the free ones. A release wakes one waiter at a time, and the
    waiter claims what is free when it runs, not one slot per release: a batch that ran
    16 handlers back to back frees 16 slots in one go, and the first reader waiting gets
    them all. (With `asyncio.Semaphore`, each release hands one slot to the next waiter:
    on a 30k ordered drain, 1,384 of 2,530 chained begins, `core.batchpath`, woke with
    one slot and began one head; with `Slots` they begin 24 on average.) Nobody overtakes
    a waiter: while one waits or was woken, `take` and a new acquire queue.
    """

    __slots__ = ("_free", "_waiters", "_woken")

    def __init__(self, n: int) -> None:
        self._free = n
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._woken = False  # a waiter was woken and has not claimed yet

    def locked(self) -> bool:
        """True when an acquire would wait."""
        return self._free <= 0 or self._woken or bool(self._waiters)

    def take(self, n: int) -> int:
        """Take up to `n` free slots without waiting (0 when an acquire would wait)."""
        if self.locked():
            return 0
        got = min(n, self._free)
        self._free -= got
        return got

    async def acquire(self) -> None:
        await self.acquire_up_to(1)

    async def acquire_up_to(self, n: int) -> int:
        """Wait until a slot is free (in turn), then take up to `n`: how many were taken."""
        if not self.locked():
            return self.take(n)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():  # woken, then cancelled: pass it on
                self._woken = False
                self._wake()
            elif fut in self._waiters:  # a release may have dropped it already
                self._waiters.remove(fut)
            raise
        self._woken = False
        got = min(n, self._free)  # > 0: nothing takes a slot while a waiter is woken
        self._free -= got
        self._wake()
        return got

    def release(self, n: int = 1) -> None:
        self._free += n
        self._wake()

    def _wake(self) -> None:
        if self._woken or self._free <= 0:
            return
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                self._woken = True
                fut.set_result(None)
                return


class Slot:
    """One task's hold on its worker's handler slots; acquire and release are idempotent."""

    __slots__ = ("_held", "_slots", "_hold", "_since")

    def __init__(self, slots: Slots, hold: Any = None, held: bool = False) -> None:
        self._slots = slots
        self._held = held
        self._hold = hold  # histogram child observing each hold (homeport_slot_hold_seconds)
        self._since = time.perf_counter() if held else 0.0

    async def acquire(self) -> None:
        if not self._held:
            await self._slots.acquire()
            self._held = True
            self._since = time.perf_counter()

    def release(self) -> None:
        if self._held:
            self._held = False
            self._slots.release()
            if self._hold is not None:
                self._hold.observe(time.perf_counter() - self._since)
