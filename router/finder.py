"""Any gateway answers for any task id: GetTask, WatchTask and CancelTask find the task's
home region and ask that home's serving copy, wherever the call arrived.

A task id carries no region, so the finder asks every home: first the record stores (a
task a worker picked up), then the serving copies' Redis (a task still waiting; see
`TaskLookup.waiting`). A single-region gateway has one home, its own. A routed gateway
(`router.routed.RoutedServing`) has every home of the topology, each reached the way its
route says *now*: during a failover the promoted mirror is asked, so a task stays
visible while its home is down. A partition key, when the caller gives one (CancelTask),
names the home directly.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from homeport.core.errors import HomeportError, TaskNotFound
from homeport.router.proto_gen import scheduler_pb2 as pb
from homeport.router.records import TaskLookup


class TaskFinder:
    """Finds a task's home among `homes()`; `lookup_for(home)` reads one home now."""

    def __init__(
        self,
        homes: Callable[[], Sequence[str]],
        lookup_for: Callable[[str], Awaitable[TaskLookup]],
        home_of: Callable[[str], str],
    ) -> None:
        self._homes = homes
        self._lookup_for = lookup_for
        self._home_of = home_of

    @classmethod
    def single(cls, lookup: TaskLookup) -> TaskFinder:
        """One home region: the gateway's own."""

        async def own(_: str) -> TaskLookup:
            return lookup

        return cls(lambda: [lookup.region], own, lambda _: lookup.region)

    async def locate(self, task_id: str) -> tuple[str, pb.TaskInfo] | None:
        """(home, what it knows of the task), records before Redis; None if unknown.

        A home that cannot be read (its database or serving copy unreachable) does not
        hide a task found elsewhere; if the task is found nowhere and some home could not
        be read, that home's error is raised instead of NOT_FOUND."""
        failed: list[HomeportError] = []

        async def read(home: str, recorded: bool) -> pb.TaskInfo | None:
            try:
                lookup = await self._lookup_for(home)
                if recorded:
                    return await lookup.recorded(task_id)
                return await lookup.waiting(task_id)
            except HomeportError as exc:
                failed.append(exc)
                return None

        homes = list(self._homes())
        for recorded in (True, False):
            got = await asyncio.gather(*(read(h, recorded) for h in homes))
            for home, info in zip(homes, got, strict=True):
                if info is not None:
                    return home, info
        if failed:
            raise failed[0]
        return None

    async def get(self, task_id: str) -> pb.TaskInfo:
        found = await self.locate(task_id)
        if found is None:
            raise TaskNotFound(task_id)
        return found[1]

    async def cancel(self, task_id: str, partition_key: str) -> tuple[bool, pb.TaskStatus]:
        if partition_key:
            home = self._home_of(partition_key)
        else:
            found = await self.locate(task_id)
            if found is None:
                raise TaskNotFound(task_id)
            home = found[0]
        return await (await self._lookup_for(home)).cancel(task_id, partition_key)

    async def watch(self, task_id: str, poll_s: float) -> AsyncIterator[pb.TaskEvent]:
        """Find the task's home (waiting for a task submitted a moment from now), then
        follow it there; the home's lookup is taken afresh each poll so a failover
        meanwhile moves the watch to the serving copy. An unreachable home is polled
        again; the caller's deadline bounds the watch."""
        found = None
        while found is None:
            with contextlib.suppress(HomeportError):  # a home unreachable: look again
                found = await self.locate(task_id)
            if found is None:
                await asyncio.sleep(poll_s)
        home = found[0]
        last: tuple[int, int] | None = None
        while True:
            info = None
            with contextlib.suppress(HomeportError):  # e.g. mid-failover: poll again
                info = await (await self._lookup_for(home)).find(task_id)
            if info is not None:
                event = TaskLookup.event(task_id, info)
                if (int(info.status), info.attempt_count) != last:
                    last = (int(info.status), info.attempt_count)
                    yield event
                    if event.final:
                        return
            await asyncio.sleep(poll_s)
