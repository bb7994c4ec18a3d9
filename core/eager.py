"""Starting a batch's handlers: each in a Task of its own, its first step at once where
the interpreter can.

A handler must run as the current Task of its own: `asyncio.timeout`, `TaskGroup`,
`asyncio.current_task().cancel()` and libraries built on them (anyio, aiohttp's client
timeouts) act on the current Task. Before the fourteenth session the batch path drove
each coroutine's first step by hand in the partition's reader Task, and a handler's
`asyncio.timeout` then cancelled the reader: the partition stopped reading for good
(`tests/core/test_batchpath.py::test_a_handler_owns_its_task...`).

`start` makes the Task. On Python 3.12 and later it runs the first step inside the Task
at once (`eager_start`, as `asyncio.eager_task_factory` does for a whole loop), so a
handler that never suspends is done when `start` returns. On 3.11 the first step runs on
the next turn of the loop; `settle` tells the caller when to look: right away where the
first steps ran eagerly, else one loop turn later (Tasks created before a `call_soon`
callback take their first step before it).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any

EAGER = sys.version_info >= (3, 12)


def start(
    loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], name: str
) -> asyncio.Task[Any]:
    """A Task running `coro`, its first step already taken if the interpreter allows."""
    if EAGER:
        return asyncio.Task(coro, loop=loop, name=name, eager_start=True)  # type: ignore[call-arg,unused-ignore]
    return loop.create_task(coro, name=name)


def settle(loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any) -> None:
    """Call `fn(*args)` once every Task `start`ed before has taken its first step."""
    if EAGER:
        fn(*args)
    else:
        loop.call_soon(fn, *args)


def outcome(task: asyncio.Task[Any]) -> tuple[bool, Any]:
    """A done, not cancelled, Task's (True, result) or (False, exception)."""
    exc = task.exception()
    return (True, task.result()) if exc is None else (False, exc)
