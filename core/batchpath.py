"""`BatchPath`: a partition consumer's per-batch way of reading and running tasks.

One take.lua call reads a batch of new entries and begins those that may start at once
(for which the reader took a handler slot and a gate share beforehand, as a per-task
begin would): of unordered kinds any, of ordered kinds the first entry of a key that has
nothing ahead of it (no entry of the key queued, running, or finished but not yet acked
in this consumer: `PartitionConsumer.held_keys`). Each handler runs in a Task of its own
(`core.eager`: its first step at once on Python 3.12+, on the next loop turn on 3.11).
Once every first step ran, the handlers that are done end together: metrics, the
records, one flush, and the acks queued together (the stepper sends them in one step
call); a handler that suspended ends alone when its Task does.

Everything rare leaves the batch for the consumer's per-task path, with the verdict take
already got: a cancelled entry, a duplicate (an earlier begin never finished), a passed
deadline, a sync handler, and a failed attempt (retries, dead-letter).

Ordered entries that take did not begin join their key's FIFO. A key's FIFO head runs
alone of its key; when it ends, its finish is queued in the stepper and the next entry
becomes the head (`PartitionConsumer.head_done`). New heads, a key's first entry or the
next one, begin and run in batches too (`chain`): one `begin_many` through the stepper,
behind the finishes queued before it (so a key's next entry begins only after the
previous one's ack), then the same batch run. A take call is no step call: it begins
nothing of a key with an entry queued, running, or finished but not yet acked.

The guarantees are the per-task path's: the slot is held from begin until the handler
returns, the gate share from begin until the ack is queued, and the records are flushed
before the ack is queued (an acked task is always recorded).
"""

from __future__ import annotations

import asyncio
import time
from functools import partial
from typing import TYPE_CHECKING, Any

from homeport.core import eager
from homeport.core.app import Cancelled, Registration, TaskContext, encode_result
from homeport.core.broker import Finish, TakeKinds
from homeport.core.entry import Delivery, Undecodable
from homeport.core.errors import Fenced
from homeport.core.metrics import observe_many
from homeport.core.nodes import Held
from homeport.core.runtime import Slot
from homeport.core.store import AttemptRecord, Status

if TYPE_CHECKING:
    from homeport.core.consumer import PartitionConsumer

NOT_BEGUN = -2
# The error of an attempt whose handler let a CancelledError out while the worker was not
# stopping (it cancelled its own Task, or a library raised one): a failure, retried, or
# the entry would stay pending and, for an ordered kind, its key would stall.
HANDLER_CANCELLED = "CancelledError: raised by the handler, not by a worker stop"
# Most held keys a take call carries (see `BatchPath.take`).
MAX_HELD_KEYS = 4096
# (ok, result, error) of one attempt, as `PartitionConsumer._attempt` returns it.
Outcome = tuple[bool, bytes | None, str | None]


class BatchPath:
    """The batch read and run of one `PartitionConsumer` (see the module docstring)."""

    def __init__(self, c: PartitionConsumer) -> None:
        self.c = c
        app = c.rt.app
        regs = (app.handler(k) for k in app.kinds)
        self._regs = {r.kind: r for r in regs if r is not None}
        self.kinds = list(self._regs)
        free = [k for k, r in self._regs.items() if not r.options.ordered]
        ordered = [k for k, r in self._regs.items() if r.options.ordered]
        self._kinds = TakeKinds.of(free, ordered)
        # With very many keys held, their list would cost more than the begins it allows:
        # ordered entries then take the per-task path for that read.
        self._free_kinds = TakeKinds.of(free, [])
        # Only unordered kinds: a read waits for a free slot and reads no more entries
        # than it holds slots for. With ordered kinds too, it reads on without (reading
        # ahead of the slots, `prefetch`), and entries past the slots it holds come back
        # unbegun and take the per-task path.
        self._open = False
        self._only = not ordered
        # The reader's own connection for its take calls (one at a time; `Held`).
        self.conn = Held()
        # Names of the handler Tasks a take and a chain start (tests tell them apart).
        self._names = (f"take {c.pk.name}", f"chain {c.pk.name}")

    def open(self) -> None:
        """Count the consumer among the worker's readers (fair shares of slots)."""
        if not self._open:
            self._open = True
            self.c.rt.readers += 1

    def close(self) -> None:
        if self._open:
            self._open = False
            self.c.rt.readers -= 1

    async def take(self, count: int, bad: list[Undecodable]) -> int:
        """Read up to `count` new entries; begin and run the unordered ones at once.
        Returns how many entries were read (undecodable ones included)."""
        c = self.c
        rt = c.rt
        held = 0
        since = time.perf_counter()
        if self.kinds:
            # A slot per entry that may be begun, taken before the begin as on the per-task
            # path. With only unordered kinds, waiting for the first one paces reading to
            # the handlers' progress; with ordered kinds too, reading goes on without.
            # At most a fair share of the slots: one reader taking them all would leave
            # the others' reads waiting, one round trip at a time.
            share = min(count, max(1, rt.settings.concurrency // max(1, rt.readers)))
            if self._only:
                held = await rt.slots.acquire_up_to(share)
            else:
                held = rt.slots.take(share)
            # The slots' hold starts now, before the take round trip (as the per-task
            # path's starts before its begin step): the model's service time is the hold.
            since = time.perf_counter()
            if held and not rt.gate.try_enter_shared(held):  # a suspect waits or runs alone
                rt.slots.release(held)
                held = 0
            elif self._only:
                count = held  # every entry read is begun: read no more than that
        kinds, keys = self._kinds, c.held_keys()
        if len(keys) > MAX_HELD_KEYS:
            kinds, keys = self._free_kinds, []
        try:
            got: list[tuple[Delivery, int]] = await c._io(
                lambda: rt.broker.take(
                    c.pk, c.token, rt.worker_id, count, kinds, keys, held, bad, self.conn
                )
            )
        except BaseException:
            self._give_back(held)
            raise
        begun = [(d, v) for d, v in got if v != NOT_BEGUN]
        self._give_back(held - len(begun))
        for d, _ in begun:
            if self._regs[d.kind].options.ordered:
                c.head_of(d)  # before the admits: the key's later entries queue behind it
        c._admit([d for d, v in got if v == NOT_BEGUN])
        if begun:
            rt.take(len(begun))
            c._buffered += len(begun)
            self._run(begun, since, self._names[0])
        return len(got) + len(bad)

    def _give_back(self, n: int) -> None:
        self.c.rt.slots.release(n)
        self.c.rt.gate.leave_shared(n)

    def _run(self, begun: list[tuple[Delivery, int]], since: float, name: str) -> None:
        """Start the begun entries' handlers, each in a Task of its own named `name`
        (`core.eager`); their slots were taken at `since` (perf_counter). Once every first
        step ran, `_seal` ends the batch's handlers that are done already."""
        c = self.c
        loop = asyncio.get_running_loop()
        now = time.time()
        waits: list[float] = []
        started: list[tuple[Delivery, Registration, asyncio.Task[Any], float]] = []
        for d, verdict in begun:
            reg = self._regs[d.kind]  # take.lua begins only these kinds
            if verdict or not reg.is_async or (d.deadline_ms and now * 1000 > d.deadline_ms):
                c._spawn(self._continue(d, reg, verdict, None))
                continue
            waits.append(max(0.0, now - d.ready_ms / 1000))
            ctx = self._context(d)
            c._running[d.task_id] = ctx
            at = time.time()
            task = eager.start(loop, reg.fn(ctx), name)
            c._tasks.add(task)  # a drain waits for it, an abort cancels it
            started.append((d, reg, task, at))
        c._m_started.inc(len(waits))
        observe_many(c._m_latency, waits)
        if started:
            eager.settle(loop, self._seal, started, since)

    def _seal(
        self, started: list[tuple[Delivery, Registration, asyncio.Task[Any], float]], since: float
    ) -> None:
        """End the batch's handlers that are done (one flush and the acks together, in
        `_complete`); one that suspended goes on in its Task and ends alone (`_later`)."""
        c = self.c
        finishes: list[tuple[Finish, str | None]] = []
        holds: list[float] = []
        for d, reg, task, at in started:
            if not task.done():
                c.rt.inflight += 1
                c.rt.recorder.task(c._record(d, Status.RUNNING, d.attempts_before + 1, started=at))
                task.add_done_callback(partial(self._later, d, reg, at, since))
                continue
            fin = self._settled(d, reg, task, at)
            if fin is not None:
                holds.append(time.perf_counter() - since)
                finishes.append(fin)
        observe_many(c._m_hold, holds)
        if finishes:
            c._spawn(self._complete(finishes))

    def _later(
        self, d: Delivery, reg: Registration, at: float, since: float, task: asyncio.Task[Any]
    ) -> None:
        """A handler that suspended in its first step ended."""
        c = self.c
        c.rt.inflight -= 1
        fin = self._settled(d, reg, task, at)
        if fin is not None:
            c._m_hold.observe(time.perf_counter() - since)
            c._spawn(self._complete([fin]))

    def _settled(
        self, d: Delivery, reg: Registration, task: asyncio.Task[Any], at: float
    ) -> tuple[Finish, str | None] | None:
        """A done handler Task gives its slot back and ends its entry: the ack to queue
        with its ordered entry's key, or None when the per-task path takes over (a failed
        attempt, a handler's own CancelledError among them) or nothing more happens
        (cancelled by the worker's abort: nothing is recorded or acked, the entry stays
        pending for the next owner)."""
        c = self.c
        c._tasks.discard(task)
        c._running.pop(d.task_id, None)
        c.rt.slots.release()
        if task.cancelled() and c._draining:  # the worker's abort cancelled it
            c.rt.gate.leave_shared(1)
            c._release()
            return None
        outcome: Outcome
        if task.cancelled():  # the handler's own CancelledError: a failed attempt
            outcome = (False, None, HANDLER_CANCELLED)
        else:
            ok, value = eager.outcome(task)
            outcome = (ok, encode_result(value), None) if ok else (ok, None, failure(value))
        fin = self._ended(d, outcome, at, time.time())
        if fin is None:
            c._spawn(self._continue(d, reg, 0, outcome))
            return None
        return fin, d.key if reg.options.ordered else None

    def _context(self, d: Delivery) -> TaskContext:
        pk = self.c.pk
        return TaskContext(
            d.task_id,
            d.key,
            d.kind,
            d.payload,
            d.attempts_before + 1,
            d.deliveries,
            pk.region,
            pk.number,
        )

    def _ended(self, d: Delivery, outcome: Outcome, started: float, ended: float) -> Finish | None:
        """Record the attempt; for a success or a cancel also the task's end, and return its
        ack. None for a failed attempt (the per-task path retries or dead-letters it)."""
        c = self.c
        ok, value, error = outcome
        attempt = d.attempts_before + 1
        status = status_of(ok, error)
        pk = c.pk
        c.rt.recorder.attempt(
            AttemptRecord(
                d.task_id,
                attempt,
                d.entry_id,
                c.rt.worker_id,
                pk.region,
                pk.number,
                status,
                started,
                ended,
                False,
                error,
            )
        )
        if status is Status.FAILED:
            return None
        (c._m_succeeded if ok else c._m_cancelled).inc()
        c.rt.recorder.task(
            c._record(d, status, attempt, result=value, started=started, finished=True)
        )
        return Finish("A", d.entry_id, d.task_id)

    async def _complete(self, finishes: list[tuple[Finish, str | None]]) -> None:
        """Flush the batch's records once, then queue its acks (and for an ordered entry,
        hand its key on to the key's next entry); then the batch's gate shares and budget
        go back. `finishes`: each ack with its ordered entry's key (None if unordered)."""
        c = self.c
        nexts: list[Delivery] = []
        try:
            await c.rt.recorder.flushed()
            for f, key in finishes:
                c._send_finish(f, 0, key)
                if key is not None and (nxt := c.head_done(key)) is not None:
                    nexts.append(nxt)
        finally:
            c.rt.gate.leave_shared(len(finishes))
            for _ in finishes:
                c._release()
        if nexts:
            await self.chain(nexts)

    async def chain(self, heads: list[Delivery]) -> None:
        """Begin and run new FIFO heads (a key's first entry, or its next one after its
        previous head's finish was queued: the stepper applies that finish first) in
        batches: wait for a slot, take every other free one, begin that many heads in one
        step call and run them as a batch. Heads that must run alone, have no handler, or
        meet a waiting suspect at the gate go to their key's runner (per task)."""
        c, rt = self.c, self.c.rt
        pending: list[Delivery] = []
        for d in heads:
            if d.kind in self._regs and not c.alone(d):
                pending.append(d)
            else:
                c.run_key(d.key)
        while pending and not c._draining:
            n = await rt.slots.acquire_up_to(len(pending))
            if not rt.gate.try_enter_shared(n):  # a suspect waits: per task, behind it
                rt.slots.release(n)
                for d in pending:
                    c.run_key(d.key)
                return
            if c._draining:  # stopped while waiting for the slot: begin nothing more
                self._give_back(n)
                return
            batch, pending = pending[:n], pending[n:]
            since = time.perf_counter()
            try:
                verdicts = await c._io(
                    lambda b=batch: c._stepper.begin_many([(d.entry_id, d.task_id) for d in b]),  # type: ignore[misc]
                    "begin",
                )
            except Fenced:
                self._give_back(n)
                c.lost = True
                c._draining = True
                return
            except BaseException:
                self._give_back(n)
                raise
            self._run(list(zip(batch, verdicts, strict=True)), since, self._names[1])

    async def _continue(
        self, d: Delivery, reg: Registration, verdict: int, first: Outcome | None
    ) -> None:
        """The per-task path for a begun entry (it holds a slot, unless its first attempt
        already ran, and a gate share)."""
        c = self.c
        slot = Slot(c.rt.slots, c._m_hold, held=first is None)
        try:
            await c._begun(d, reg, slot, verdict, first)
        finally:
            slot.release()
            c.rt.gate.leave_shared(1)
            c._release()
        if reg.options.ordered and c.head_done(d.key) is not None:
            c.run_key(d.key)  # its ack is queued (or it was cancelled): the key goes on


def failure(exc: BaseException) -> str:
    """An attempt's error as recorded: "cancelled", or the exception's type and text."""
    return "cancelled" if isinstance(exc, Cancelled) else f"{type(exc).__name__}: {exc}"


def status_of(ok: bool, error: str | None) -> Status:
    """The status an attempt ends with, from its outcome."""
    if ok:
        return Status.SUCCEEDED
    return Status.CANCELLED if error == "cancelled" else Status.FAILED
