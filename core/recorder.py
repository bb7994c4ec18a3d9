"""The record writer: buffers task and attempt records and writes them in batches.

Workers call `task()` / `attempt()` for every state change and `await flushed()` before
acknowledging an entry, so a task acked in Redis is always recorded in PostgreSQL first
(a crash in between reruns the task, which the forward-only upsert absorbs). Batches form
by group commit: while one write is in flight, new records pile up and go in the next one;
an idle writer writes at once. A task's several records inside one batch are coalesced to
its furthest state, so a batch upserts each id once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from homeport.core.metrics import Metrics
from homeport.core.retry import warn_repeated
from homeport.core.store import AttemptRecord, RecordStore, Status, TaskRecord, supersedes

log = logging.getLogger(__name__)
_RETRY_S = 0.2


def _merge(old: TaskRecord, new: TaskRecord) -> TaskRecord:
    """The record that wins by the forward-only rule, with gaps filled from the other."""
    win, lose = (new, old) if supersedes(old, new) else (old, new)
    win.attempts = max(win.attempts, lose.attempts)
    for name in ("payload", "enqueued_at", "started_at", "scheduled_at"):
        if getattr(win, name) is None:
            setattr(win, name, getattr(lose, name))
    return win


@dataclass(eq=False)
class RecordWriter:
    """Batches records for one `RecordStore`; with no store it drops them (benchmarks)."""

    store: RecordStore | None
    metrics: Metrics
    batch_max: int = 5000  # records in one write
    linger_s: float = 0.0  # seconds a write waits to gather more; 0 = writes at once

    def __post_init__(self) -> None:
        self._tasks: dict[str, TaskRecord] = {}
        # "running" records wait here: most tasks finish before the next write, and then
        # only their final record is written (the start time is carried over).
        self._running: dict[str, TaskRecord] = {}
        self._attempts: list[AttemptRecord] = []
        self._written = asyncio.Event()  # replaced by a fresh one at every write
        # Events of failed writes, set with the next successful one: their waiters'
        # records went back into the buffer.
        self._carried: list[asyncio.Event] = []
        self._in_flight: asyncio.Event | None = None  # the event of the write under way
        self._oldest: float | None = None
        self._waiting = False
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._stopping = False

    def task(self, rec: TaskRecord) -> None:
        if self.store is None:
            return
        if rec.status is Status.RUNNING and rec.id not in self._tasks:
            self._running[rec.id] = rec
        else:
            running = self._running.pop(rec.id, None)
            if running is not None and rec.started_at is None:
                rec.started_at = running.started_at
            old = self._tasks.get(rec.id)
            self._tasks[rec.id] = rec if old is None else _merge(old, rec)
        self._touch()

    def attempt(self, rec: AttemptRecord) -> None:
        if self.store is None:
            return
        self._attempts.append(rec)
        self._touch()

    def _touch(self) -> None:
        if self._oldest is None:
            self._oldest = time.monotonic()
        self._wake.set()

    async def flushed(self) -> None:
        """Return once every record given before this call is written."""
        if self.store is None:
            return
        if self._tasks or self._attempts:
            self._waiting = True
            self._wake.set()
            await self._written.wait()
        elif self._in_flight is not None:
            await self._in_flight.wait()

    @property
    def lag_s(self) -> float:
        return 0.0 if self._oldest is None else time.monotonic() - self._oldest

    def start(self) -> None:
        self._runner = asyncio.create_task(self._run(), name="record-writer")

    async def stop(self) -> None:
        """Write what is buffered, then stop."""
        self._stopping = True
        self._wake.set()
        if self._runner is not None:
            await self._runner

    async def run_once(self) -> None:
        """Write everything buffered now (in chunks of `batch_max`), then wake waiters."""
        tasks = list(self._tasks.values()) + list(self._running.values())
        self._tasks, self._running = {}, {}
        attempts, self._attempts = self._attempts, []
        written, self._written = self._written, asyncio.Event()
        carried, self._carried = self._carried, []
        self._waiting = False
        self._oldest = None
        if self.store is None:
            written.set()
            return
        started = time.monotonic()
        self._in_flight = written
        try:
            n = self.batch_max
            for lo in range(0, max(len(tasks), len(attempts)), n):
                await self.store.write(tasks[lo : lo + n], attempts[lo : lo + n])
        except Exception:
            self._in_flight = None
            # Put the batch back (merging with newer records) and let the loop retry: a
            # record is never dropped; acks wait meanwhile, which back-pressures workers.
            # Whoever waited on this write, or called flushed() while it was in flight
            # (on the fresh event), has records in the buffer again: the next successful
            # write must wake them all.
            for t in tasks:
                self.task(t)
            self._attempts[:0] = attempts
            self._carried = [*carried, written]
            self._waiting = True
            self._oldest = started
            raise
        self._in_flight = None
        self.metrics.records_written.labels("tasks").inc(len(tasks))
        self.metrics.records_written.labels("attempts").inc(len(attempts))
        for event in (*carried, written):
            event.set()

    async def _run(self) -> None:
        failures = 0
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self.linger_s and not self._waiting:
                await asyncio.sleep(self.linger_s)
            self.metrics.record_lag.set(self.lag_s)
            if not (self._tasks or self._running or self._attempts or self._waiting):
                if self._stopping:
                    return
                continue
            try:
                await self.run_once()
                failures = 0
            except Exception as exc:  # noqa: BLE001 - any write failure is retried
                failures += 1
                self.metrics.loop_errors.labels("record-writer").inc()
                self.metrics.record_write_failures.inc()
                warn_repeated(log, "record write", failures, exc)
                await asyncio.sleep(_RETRY_S)
                self._wake.set()
            else:
                self.metrics.record_lag.set(self.lag_s)
                if self._stopping and not (self._tasks or self._running or self._attempts):
                    return
