"""`Stepper`: coalesces one partition's begins and finishes into step.lua calls.

Each delivery costs two script operations: *begin* before its handler starts (checks the
lease token, skips it if cancelled, notes a duplicate execution) and *finish* after
(XACK, dead-letter or re-schedule). Sending each alone would cost a round trip per task;
the stepper sends everything queued in one call, and while that call is in flight new ops
queue up for the next (group commit). Ops are sent in the order they were queued and the
script applies finishes before begins, so a key's next task never begins before the
previous one is acked.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

from homeport.core.broker import Broker, Finish
from homeport.core.errors import Fenced
from homeport.core.keys import PartitionKeys
from homeport.core.nodes import Held

BEGIN_CANCELLED = -1


@dataclass(eq=False)
class Stepper:
    """Group-commits begin/finish ops of one partition under one lease token."""

    broker: Broker
    pk: PartitionKeys
    token: int  # the partition's lease token: every step is fenced by it
    consumer: str
    dead_maxlen: int
    max_ops: int = 1000  # begin/finish ops in one step

    def __post_init__(self) -> None:
        self._finishes: list[tuple[Finish, asyncio.Future[None]]] = []
        # Begins queued: a group of (entry id, task id) with one future for its verdicts.
        self._begins: list[tuple[list[tuple[str, str]], asyncio.Future[list[int]]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.fenced: Fenced | None = None
        self._closing = False
        self._conn = Held()  # its own connection: one step call at a time

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"stepper {self.pk.name}")

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Send what is queued (and wait for the call in flight), then stop."""
        if self._task is None:
            return
        self._closing = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None
        await self._conn.close()

    def finish(self, f: Finish) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.fenced is not None:
            fut.set_exception(self.fenced)
            fut.exception()
            return fut
        self._finishes.append((f, fut))
        self._wake.set()
        return fut

    async def begin(self, entry_id: str, task_id: str) -> int:
        """Begin an entry: BEGIN_CANCELLED, or how many earlier begins of it never finished
        (0 for a first run). Raises Fenced."""
        return (await self.begin_many([(entry_id, task_id)]))[0]

    async def begin_many(self, entries: list[tuple[str, str]]) -> list[int]:
        """`begin` of many (entry id, task id) at once, in one step call: their verdicts."""
        if self.fenced is not None:
            raise self.fenced
        fut: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self._begins.append((entries, fut))
        self._wake.set()
        return await fut

    def _next_begins(
        self,
    ) -> tuple[list[tuple[list[tuple[str, str]], asyncio.Future[list[int]]]], int]:
        """Take whole groups of queued begins, at least one, up to `max_ops` begins: the
        groups and how many begins they hold."""
        groups, ops = 0, 0
        for entries, _ in self._begins:
            if groups and ops + len(entries) > self.max_ops:
                break
            groups += 1
            ops += len(entries)
        beg, self._begins = self._begins[:groups], self._begins[groups:]
        return beg, ops

    @property
    def idle(self) -> bool:
        return not self._finishes and not self._begins

    async def _run(self) -> None:
        while True:
            if self.idle:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            await self.run_once()

    async def run_once(self) -> None:
        """Send up to `max_ops` queued finishes and begins in one script call."""
        fin, self._finishes = self._finishes[: self.max_ops], self._finishes[self.max_ops :]
        beg, ops = self._next_begins()
        if not self.idle:
            self._wake.set()
        try:
            verdicts = await self.broker.step(
                self.pk,
                self.token,
                self.consumer,
                [f for f, _ in fin],
                [b for entries, _ in beg for b in entries],
                self.dead_maxlen,
                self._conn,
            )
        except Exception as exc:  # noqa: BLE001 - handed to every waiter
            if isinstance(exc, Fenced):
                self.fenced = exc
            for _, ffut in fin:
                _fail(ffut, exc)
            for _, bfut in beg:
                _fail(bfut, exc)
            return
        for _, ffut in fin:
            if not ffut.done():
                ffut.set_result(None)
        if len(verdicts) != ops:
            raise ValueError(f"step.lua answered {len(verdicts)} begins of {ops}")
        at = 0
        for entries, bfut in beg:
            if not bfut.done():
                bfut.set_result(verdicts[at : at + len(entries)])
            at += len(entries)


def _fail(fut: asyncio.Future[Any], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)
        fut.exception()  # retrieved: a waiter that went away must not log "never retrieved"
