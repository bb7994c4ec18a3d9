"""`PartitionConsumer`: runs one owned partition's entries with per-key order.

A *consumer* exists while its worker holds the partition's lease (token `token`). It
first takes over the pending entries of earlier owners (XPENDING + XCLAIM, oldest first,
delivery counts kept) and queues them before anything new, then reads new entries with
XREADGROUP in batches. Entries of an ordered kind join their key's FIFO; its head begins
only after the previous head's finish (ack, dead-letter or re-schedule) was queued in the
stepper, which applies it first — that is the per-key order guarantee. Heads begin and
run in batches (`core.batchpath`); the rare cases (a suspect, a retry, a sync handler)
go through the key's runner, one task at a time. Different keys run concurrently,
bounded by the worker's `concurrency` slots; reading runs up to `prefetch` entries ahead
of them (the fetch budget, `core.runtime`). Unordered kinds skip the key FIFO.

Stopping: `drain()` stops reading and starting, lets running handlers finish within the
grace period, and leaves the rest pending for the next owner; `abort()` (lost lease, or
a second SIGTERM) cancels running handlers at once, unacked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from homeport.core.app import (
    Registration,
    TaskContext,
    TaskOptions,
    call_handler,
    encode_result,
)
from homeport.core.batchpath import HANDLER_CANCELLED, BatchPath, Outcome, failure, status_of
from homeport.core.broker import Finish
from homeport.core.entry import Delivery, Undecodable
from homeport.core.errors import Fenced, HomeportError
from homeport.core.keys import PartitionKeys
from homeport.core.retry import warn_repeated
from homeport.core.runtime import Slot, WorkerRuntime
from homeport.core.stepper import BEGIN_CANCELLED, Stepper
from homeport.core.store import AttemptRecord, Status, TaskRecord

log = logging.getLogger(__name__)
_RETRY_IO_S = 0.2
# Unfinished earlier begins after which an entry runs alone (see `_execute`).
ALONE_AFTER_STARTS = 2
# Seconds an abort waits for cancelled handlers before it leaves the ones that ignore
# their cancellation running (well under a lease's TTL: a lost lease's abort runs in the
# membership loop, which renews every other partition's lease).
ABORT_WAIT_S = 1.0
_DEFAULT_OPTIONS = TaskOptions()


class PartitionConsumer:
    """Consumes one partition while holding its lease; see the module docstring."""

    def __init__(self, rt: WorkerRuntime, pk: PartitionKeys, token: int) -> None:
        self.rt = rt
        self.pk = pk
        self.token = token
        self._labels = (pk.region, str(pk.number))
        self._stepper = Stepper(rt.broker, pk, token, rt.worker_id, rt.settings.dead_maxlen)
        self._keys: dict[str, deque[Delivery]] = {}
        # Ordered keys with a finish queued but not yet applied by a step call.
        self._unacked: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: dict[str, TaskContext] = {}
        self._buffered = 0
        self._space = asyncio.Event()
        self._space.set()
        m, lb = rt.metrics, self._labels
        self._m_reclaimed = m.reclaimed.labels(*lb)
        self._m_started = m.started.labels(*lb)
        self._m_succeeded = m.succeeded.labels(*lb)
        self._m_failed = m.failed.labels(*lb)
        self._m_retried = m.retried.labels(*lb)
        self._m_dead = m.dead.labels(*lb)
        self._m_cancelled = m.cancelled.labels(*lb)
        self._m_duplicate = m.duplicate_executions.labels(*lb)
        self._m_latency = m.latency.labels(*lb)
        self._m_hold = m.slot_hold.labels(pk.region)
        self._draining = False
        self._given_back = False  # `abort` gave the budget of every entry held back
        self._reader: asyncio.Task[None] | None = None
        self._batch = BatchPath(self)
        self._taking = True
        self.lost = False

    # --- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        self._batch.open()
        self._stepper.start()
        self._reader = asyncio.create_task(self._read(), name=f"read {self.pk.name}")
        self._reader.add_done_callback(self._reap)

    async def drain(self, grace_s: float, stop_now: asyncio.Event | None = None) -> None:
        """Stop reading and starting; wait up to `grace_s` (or until `stop_now` is set)
        for running handlers, then abort what still runs."""
        self._draining = True
        await self._stop_reader()
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            finished = asyncio.ensure_future(asyncio.wait(pending, timeout=grace_s))
            waits: list[asyncio.Future[Any]] = [finished]
            if stop_now is not None:
                waits.append(asyncio.ensure_future(stop_now.wait()))
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()
        await self.abort()

    async def abort(self) -> None:
        """Cancel everything now; unfinished entries stay pending for the next owner."""
        self._draining = True
        self._batch.close()
        await self._stop_reader()
        await self._batch.conn.close()
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            _, stuck = await asyncio.wait(list(self._tasks), timeout=ABORT_WAIT_S)
            if stuck:
                # A handler that catches CancelledError and goes on cannot be stopped; an
                # abort that waited for it would hold up its caller (the membership loop,
                # when a lease was lost: every other partition's renewal with it).
                log.warning(
                    "partition %s: %d task(s) ignored their cancellation for %.0fs and are "
                    "left running (their entries stay pending for the next owner); "
                    "handlers still running: %s",
                    self.pk.name,
                    len(stuck),
                    ABORT_WAIT_S,
                    ", ".join(sorted(self._running)) or "none",
                )
        await self._stepper.stop()
        # Entries left unstarted stay pending in Redis; give their budget back. Whatever
        # ends later (a handler left running, a batch's finish it spawned as it ended)
        # gives nothing back (`_release`): it is counted here.
        for _ in range(self._buffered):
            self.rt.give()
        self._buffered = 0
        self._given_back = True
        self._keys.clear()

    async def _stop_reader(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None

    @property
    def busy(self) -> bool:
        return bool(self._tasks) or not self._stepper.idle

    def signal_cancel(self, task_ids: set[str]) -> None:
        """Set the cancel signal of running handlers whose task id is in `task_ids`."""
        for tid in task_ids & self._running.keys():
            self._running[tid].request_cancel()

    # --- reading ---------------------------------------------------------------------------

    async def _read(self) -> None:
        rt, s = self.rt, self.rt.settings
        try:
            await self._io(lambda: rt.broker.ensure_group(self.pk))
            bad: list[Undecodable] = []
            claimed = await self._io(
                lambda: rt.broker.claim_pending(self.pk, rt.worker_id, 500, bad)
            )
            self._dead_letter_undecodable(bad)
            if claimed:
                self._m_reclaimed.inc(len(claimed))
                self._admit(claimed)
            while not self._draining:
                if self._buffered >= s.max_buffered:
                    self._space.clear()
                    await self._space.wait()
                    continue
                if not rt.space.is_set():
                    await rt.space.wait()
                    continue
                count = min(
                    s.batch_size,
                    s.max_buffered - self._buffered,
                    max(1, rt.budget - rt.buffered),
                )
                if self._taking and self._batch.kinds:
                    # One call reads and begins (core/batchpath.py); after an empty one,
                    # the next read blocks until an entry arrives.
                    self._taking = await self._batch.take(count, bad) > 0
                    self._dead_letter_undecodable(bad)
                    continue
                got = await self._io(
                    lambda n=count: rt.broker.read_new(  # type: ignore[misc]
                        self.pk, rt.worker_id, n, s.block_ms, bad
                    )
                )
                self._dead_letter_undecodable(bad)
                self._admit(got)
                self._taking = bool(got)
        except Fenced:
            self.lost = True

    def _dead_letter_undecodable(self, bad: list[Undecodable]) -> None:
        """Dead-letter and ack entries that are no task blob of a known version (issue 18):
        left pending they would be redelivered to every owner forever. They have no task
        id, so no record is written; the dead-letter entry keeps their fields and reason."""
        for u in bad:
            self.rt.metrics.undecodable.labels(*self._labels, u.reason).inc()
            self._m_dead.inc()
            log.warning(
                "partition %s: entry %s dead-lettered: %s", self.pk.name, u.entry_id, u.detail
            )
            self._send_finish(Finish("D", u.entry_id, "", u.detail, 0), 0)
        bad.clear()

    async def _io(self, op: Callable[[], Awaitable[Any]], what: str = "consumer") -> Any:
        """Retry `op` while Redis is unavailable (counted, log capped). Fenced ends it.

        Only for idempotent ops or ops that change nothing when they fail: reads, and
        step.lua calls, which run atomically or not at all.
        """
        failures = 0
        while True:
            try:
                return await op()
            except Fenced:
                raise
            except HomeportError as exc:
                failures += 1
                self.rt.metrics.loop_errors.labels(what).inc()
                warn_repeated(log, f"partition {self.pk.name}: {what}", failures, exc)
                await asyncio.sleep(_RETRY_IO_S)

    def _admit(self, deliveries: list[Delivery]) -> None:
        self.rt.take(len(deliveries))
        heads: list[Delivery] = []
        for d in deliveries:
            self._buffered += 1
            reg = self.rt.app.handler(d.kind)
            if reg is not None and not reg.options.ordered:
                self._spawn(self._run_one(d))
                continue
            q = self._keys.get(d.key)
            if q is None:
                self._keys[d.key] = deque((d,))
                heads.append(d)
            else:
                q.append(d)
        if heads:
            # New FIFO heads begin and run in batches (`BatchPath.chain`); a begin goes
            # through the stepper, behind any finish of the key queued before it.
            self._spawn(self._batch.chain(heads))

    def held_keys(self) -> list[str]:
        """Keys whose next entry must not be begun by a read (take.lua): an entry of theirs
        is queued or running here, or its finish is not yet applied in Redis (a take call
        is no step call: it could overtake a queued ack)."""
        if not self._unacked:
            return list(self._keys)
        return list(self._keys.keys() | self._unacked.keys())

    def head_of(self, d: Delivery) -> None:
        """`d`, an ordered entry a read began, heads its key's FIFO while it runs."""
        self._keys[d.key] = deque((d,))

    def head_done(self, key: str) -> Delivery | None:
        """The FIFO head a read began ended (its finish queued): the key's next entry, now
        its head, for the caller to start (`BatchPath.chain`, or `run_key`); None if the
        key is free again, or while draining."""
        q = self._keys.get(key)
        if q is None:
            return None
        q.popleft()
        if not q:
            del self._keys[key]
            return None
        return None if self._draining else q[0]

    def run_key(self, key: str) -> None:
        """Start the key's runner (the per-task path) on its queued entries."""
        self._spawn(self._run_key(key, self._keys[key]))

    def alone(self, d: Delivery) -> bool:
        """Whether `d` must run alone (see `_execute`)."""
        max_deliveries = self.rt.settings.max_deliveries
        return d.prior_starts >= min(ALONE_AFTER_STARTS, max(1, max_deliveries - 1))

    def _orders(self, d: Delivery) -> bool:
        """Whether `d` keeps its key's order: an ordered kind, or one without a handler
        (it joins its key's FIFO to be dead-lettered in turn)."""
        reg = self.rt.app.handler(d.kind)
        return reg is None or reg.options.ordered

    def _spawn(self, coro: Awaitable[None]) -> None:
        t = asyncio.ensure_future(coro)
        self._tasks.add(t)
        t.add_done_callback(self._reap)

    def _reap(self, t: asyncio.Task[Any]) -> None:
        """A runner or the reader ended. If by a bug, restart the partition: its memory
        of queued entries is gone, but Redis still holds them as pending, and the next
        consumer (same lease, same token) reclaims them in order."""
        self._tasks.discard(t)
        if not t.cancelled() and t.exception() is not None:
            self.rt.metrics.loop_errors.labels("consumer").inc()
            log.error(
                "partition %s: restarting after an unexpected error",
                self.pk.name,
                exc_info=t.exception(),
            )
            self.lost = True
            self._draining = True

    def _release(self) -> None:
        if self._given_back:  # ended after its abort gave every unit back
            return
        self.rt.give()
        self._buffered -= 1
        if self._buffered < self.rt.settings.max_buffered:
            self._space.set()

    # --- running -----------------------------------------------------------------------

    async def _run_key(self, key: str, q: deque[Delivery]) -> None:
        try:
            while q and not self._draining:
                await self._run_one(q[0], counted=False)
                q.popleft()
                self._release()
        finally:
            if self._keys.get(key) is q:
                del self._keys[key]

    async def _run_one(self, d: Delivery, counted: bool = True) -> None:
        try:
            await self._execute(d)
        except Fenced:
            self.lost = True
            self._draining = True
        finally:
            if counted:
                self._release()

    async def _execute(self, d: Delivery) -> None:
        rt = self.rt
        reg = rt.app.handler(d.kind)
        if reg is None:
            return await self._dead(
                d,
                0,
                f"unknown kind {d.kind!r}: no handler is registered "
                f"for it in app {rt.app.name!r} (known: {rt.app.kinds})",
            )
        if self._draining:
            return
        # A repeat suspect runs alone from its begin to its end (see core.gate); nothing
        # else may even begin meanwhile, or a poison task would charge innocents with its
        # crashes. One crash makes suspects of everything that was running, and running all
        # of them one by one would stall the worker for seconds after every kill; so only
        # entries begun at least twice without finishing run alone. An innocent neighbour
        # of a poison task is charged at most those two crashes.
        # With a low max_deliveries the bound tightens: an innocent charged as many
        # crashes as the bound must still stay below max_deliveries.
        alone = self.alone(d)
        await rt.gate.enter(alone)
        try:
            # After the gate: a task waiting for a slot holds none, so a suspect waiting
            # for the gate to empty cannot wait on a slot held behind it. Taken before the
            # begin (a begun task waiting for a slot would be counted as a crash suspect
            # if the worker died), given back as soon as the handler returns (recording
            # and acking need no slot), taken again for a retry.
            slot = Slot(rt.slots, self._m_hold)
            try:
                await slot.acquire()
                await self._begun(d, reg, slot, await self._begin(d))
            finally:
                slot.release()
        finally:
            rt.gate.leave(alone)

    async def _begun(
        self,
        d: Delivery,
        reg: Registration,
        slot: Slot,
        verdict: int,
        first: Outcome | None = None,
    ) -> None:
        """Run a begun entry to its end (`first`: its first attempt's outcome, if run)."""
        rt, s = self.rt, self.rt.settings
        if verdict == BEGIN_CANCELLED:
            self._m_cancelled.inc()
            rt.recorder.task(self._record(d, Status.CANCELLED, d.attempts_before))
            return
        if verdict >= s.max_deliveries:
            return await self._dead(
                d,
                d.attempts_before + verdict,
                (
                    f"poison task: started {verdict} times without finishing "
                    f"(max_deliveries={s.max_deliveries}); its handler likely kills the worker"
                ),
            )
        if verdict:
            self._m_duplicate.inc()
        opts = reg.options
        max_attempts = opts.max_attempts or d.max_attempts
        attempt = d.attempts_before + verdict + 1
        if first is None:
            self._m_latency.observe(max(0.0, time.time() - d.ready_ms / 1000))
        while True:
            if first is not None:
                (ok, value, error), first = first, None
            elif d.deadline_ms and time.time() * 1000 > d.deadline_ms:
                return await self._dead(d, attempt - 1, "deadline passed before the attempt")
            else:
                ok, value, error = await self._attempt(d, reg, attempt, verdict, slot)
            if ok or error == "cancelled":
                status = Status.SUCCEEDED if ok else Status.CANCELLED
                (self._m_succeeded if ok else self._m_cancelled).inc()
                rec = self._record(d, status, attempt, result=value, finished=True)
                return await self._finish(d, Finish("A", d.entry_id, d.task_id), rec)
            self._m_failed.inc()
            if attempt >= max_attempts:
                return await self._dead(
                    d,
                    attempt,
                    f"attempts exhausted ({attempt} of {max_attempts}); last error: {error}",
                )
            self._m_retried.inc()
            delay = opts.backoff_s(attempt, rt.rng)
            rec = self._record(d, Status.RETRYING, attempt, error=error)
            if not opts.ordered:
                due = int((time.time() + delay) * 1000)
                retry = Finish("R", d.entry_id, d.task_id, due, d.repack(attempt))
                rt.on_delayed(self.pk.delayed, due)
                return await self._finish(d, retry, rec)
            rt.recorder.task(rec)
            await asyncio.sleep(delay)  # the key waits: its next task must not start yet
            if self._draining:
                return
            attempt += 1
            verdict = 0

    async def _begin(self, d: Delivery) -> int:
        verdict: int = await self._io(lambda: self._stepper.begin(d.entry_id, d.task_id), "begin")
        return verdict

    async def _attempt(
        self, d: Delivery, reg: Registration, attempt: int, unfinished_before: int, slot: Slot
    ) -> tuple[bool, bytes | None, str | None]:
        rt = self.rt
        await slot.acquire()  # held since the begin for a first attempt; again for a retry
        ctx = TaskContext(
            d.task_id,
            d.key,
            d.kind,
            d.payload,
            attempt,
            d.deliveries,
            self.pk.region,
            self.pk.number,
        )
        started = time.time()
        self._m_started.inc()
        rt.recorder.task(self._record(d, Status.RUNNING, attempt, started=started))
        ok, value, error = False, None, None
        self._running[d.task_id] = ctx
        rt.inflight += 1
        try:
            value = encode_result(await call_handler(reg, ctx, rt.run_sync))
            ok = True
        except Exception as exc:  # noqa: BLE001 - a handler's failure is an outcome
            error = failure(exc)
        except asyncio.CancelledError:
            if self._draining:  # the worker's abort: the entry stays pending
                raise
            # The handler's own (core.batchpath.HANDLER_CANCELLED): a failed attempt. If it
            # cancelled this Task, the request is spent: take it back.
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                task.uncancel()
            error = HANDLER_CANCELLED
        finally:
            slot.release()
            rt.inflight -= 1
            self._running.pop(d.task_id, None)
        status = status_of(ok, error)
        rt.recorder.attempt(
            AttemptRecord(
                d.task_id,
                attempt,
                d.entry_id,
                rt.worker_id,
                self.pk.region,
                self.pk.number,
                status,
                started,
                time.time(),
                unfinished_before > 0,
                error,
            )
        )
        return ok, value, error

    async def _dead(self, d: Delivery, attempts: int, reason: str) -> None:
        self._m_dead.inc()
        rec = self._record(d, Status.DEAD, attempts, error=reason, finished=True)
        await self._finish(d, Finish("D", d.entry_id, d.task_id, reason, attempts), rec)

    async def _finish(self, d: Delivery, f: Finish, rec: TaskRecord) -> None:
        """Record durably, then queue the ack (so an acked task is always recorded).

        The ack is not awaited: the stepper sends ops in queue order and applies finishes
        before begins, so the key's next begin, queued after it, cannot overtake it.
        """
        self.rt.recorder.task(rec)
        await self.rt.recorder.flushed()
        self._send_finish(f, 0, d.key if self._orders(d) else None)

    def _send_finish(self, f: Finish, failures: int, key: str | None = None) -> None:
        """Queue a finish; `key`: its ordered entry's key, held (`held_keys`) until the
        finish is applied."""
        fut = self._stepper.finish(f)
        if key is not None and not failures:
            self._unacked[key] = self._unacked.get(key, 0) + 1

        def done(fut: asyncio.Future[None]) -> None:
            exc = fut.exception()
            if exc is None:
                if key is not None:
                    left = self._unacked.pop(key) - 1
                    if left:
                        self._unacked[key] = left
                return
            if isinstance(exc, Fenced):
                self.lost = True
                return
            # A failed step call changed nothing; queue the finish again shortly (the
            # key's next begin failed with it and retries after the same pause).
            self.rt.metrics.loop_errors.labels("finish").inc()
            warn_repeated(log, f"partition {self.pk.name}: finish", failures + 1, exc)
            asyncio.get_running_loop().call_later(
                _RETRY_IO_S / 2, self._send_finish, f, failures + 1, key
            )

        fut.add_done_callback(done)

    def _record(
        self,
        d: Delivery,
        status: Status,
        attempts: int,
        *,
        result: bytes | None = None,
        error: str | None = None,
        started: float | None = None,
        finished: bool = False,
    ) -> TaskRecord:
        return TaskRecord(
            id=d.task_id,
            partition_key=d.key,
            partition=self.pk.number,
            region=self.pk.region,
            kind=d.kind,
            status=status,
            attempts=attempts,
            payload=d.payload,
            scheduled_at=d.scheduled_ms / 1000 if d.scheduled_ms else None,
            epoch=d.epoch,
            result=result,
            error=error,
            enqueued_at=d.enqueued_ms / 1000 or None,
            started_at=started,
            finished_at=time.time() if finished else None,
        )
