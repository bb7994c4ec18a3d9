"""The App the local cluster's workers run by default: the demo's and load tests' tasks."""

from __future__ import annotations

import asyncio
import os
import random

from homeport.core.app import App, TaskContext


def _work_mean_s() -> float:
    raw = os.environ.get("HOMEPORT_LOADTEST_WORK_MS", "1")
    try:
        mean_ms = float(raw)
    except ValueError:
        mean_ms = -1.0
    if not mean_ms > 0:
        raise ValueError(
            f"HOMEPORT_LOADTEST_WORK_MS={raw!r}: must be a positive number of milliseconds"
            " (the mean of the `work` handler's exponential sleep), e.g. 20"
        )
    return mean_ms / 1000


WORK_MEAN_S = _work_mean_s()
_rng = random.Random()

app = App()


@app.task("noop")
async def noop(ctx: TaskContext) -> None:
    """Does nothing: measures the scheduler, not the work."""


@app.task("sleep")
async def sleep(ctx: TaskContext) -> None:
    """Sleeps for the number of milliseconds in the payload (ASCII digits), e.g. b"5"."""
    await asyncio.sleep(int(ctx.payload or b"0") / 1000)


@app.task("work")
async def work(ctx: TaskContext) -> None:
    """Sleeps an exponential time of mean HOMEPORT_LOADTEST_WORK_MS milliseconds (default
    1): I/O-bound work whose service time varies, as the capacity model assumes."""
    await asyncio.sleep(_rng.expovariate(1 / WORK_MEAN_S))


@app.task("fail_while_file")
async def fail_while_file(ctx: TaskContext) -> None:
    """Fails while the file named by the payload exists, so a test decides from outside
    when a task starts to succeed (the console's dead-letter requeue test)."""
    path = ctx.payload.decode()
    if os.path.exists(path):
        raise RuntimeError(f"{path} exists: failing on purpose")
