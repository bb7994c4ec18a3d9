"""The app real worker processes of the tests run: `--app tests.core.apps:app`.

Handlers append one line per execution start to `<HOMEPORT_TEST_EXEC_LOG>.<pid>`:
`<time ns> <pid> <task id> <key> <seq> <deliveries>`. One file per process, because a
SIGKILL can cut a write short, and merged by time (one machine, one clock; a key's next
task starts well after its previous one ended). These logs are the tests' independent
history of executions, kept even when a worker is SIGKILLed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

from homeport.core.app import App, TaskContext

app = App("tests")
_fd: list[int] = []
_DELAY_S = float(os.environ.get("HOMEPORT_TEST_TASK_S", "0"))


def _log(ctx: TaskContext) -> None:
    if not _fd:
        path = f"{os.environ['HOMEPORT_TEST_EXEC_LOG']}.{os.getpid()}"
        _fd.append(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
    line = f"{time.time_ns()} {os.getpid()} {ctx.task_id} {ctx.partition_key} "
    os.write(_fd[0], f"{line}{ctx.payload.decode()} {ctx.deliveries}\n".encode())


@app.task("seq")
async def seq(ctx: TaskContext) -> None:
    _log(ctx)
    if _DELAY_S:
        await asyncio.sleep(_DELAY_S)


@app.task("poison")
async def poison(ctx: TaskContext) -> None:
    _log(ctx)
    os.kill(os.getpid(), signal.SIGKILL)


@app.task("sleepy")
async def sleepy(ctx: TaskContext) -> None:
    _log(ctx)
    await asyncio.sleep(float(ctx.payload))


@app.task("stubborn")
async def stubborn(ctx: TaskContext) -> None:
    """Swallows its cancellation and sleeps on: only the stop-now deadline ends it."""
    _log(ctx)
    deadline = time.monotonic() + float(ctx.payload)
    while time.monotonic() < deadline:
        try:
            await asyncio.sleep(deadline - time.monotonic())
        except asyncio.CancelledError:
            continue
