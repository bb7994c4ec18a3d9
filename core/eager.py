"""Running a handler's coroutine eagerly: its first step at once, in the caller.

Most handlers of a batch return without ever suspending (no I/O, or I/O that is ready);
an asyncio Task each would cost a loop round and a few objects per task for nothing. So
the worker's batch path (`core.batchpath`) drives each coroutine's first step itself
(`first_step`), in a copy of the caller's context as a Task would; only a coroutine that
suspends gets a Task, which continues it from where it stopped (`resume`). Python 3.12's
`asyncio.eager_task_factory` does the same for a whole loop; homeport supports 3.11.
"""

from __future__ import annotations

import contextvars
from collections.abc import Coroutine, Generator
from typing import Any

DONE, RAISED, SUSPENDED = 0, 1, 2


def first_step(coro: Coroutine[Any, Any, Any]) -> tuple[int, Any, contextvars.Context]:
    """Run `coro` up to its first suspension: (DONE, return value), (RAISED, exception)
    or (SUSPENDED, what it yielded, for `resume`), with the context it ran in."""
    ctx = contextvars.copy_context()
    try:
        yielded = ctx.run(coro.send, None)
    except StopIteration as stop:
        return DONE, stop.value, ctx
    except Exception as exc:  # noqa: BLE001 - a handler's failure is an outcome
        return RAISED, exc, ctx
    return SUSPENDED, yielded, ctx


class _Resume:
    """Awaitable that hands a suspended coroutine's yields to the awaiting Task and its
    results back, as `await coro` would have done from the start."""

    __slots__ = ("_coro", "_first")

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self._coro = coro
        self._first = first

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, out = self._coro, self._first
        while True:
            try:
                sent = yield out
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # noqa: BLE001 - thrown in by the Task: pass it on
                try:
                    out = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    out = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


async def resume(coro: Coroutine[Any, Any, Any], first: Any) -> Any:
    """Continue a coroutine that `first_step` left suspended on `first`; run it in a Task
    created with the context `first_step` returned."""
    return await _Resume(coro, first)
