"""The App the local cluster's workers run by default: the demo's and load tests' tasks."""

from __future__ import annotations

import asyncio

from core.app import App, TaskContext

app = App()


@app.task("noop")
async def noop(ctx: TaskContext) -> None:
    """Does nothing: measures the scheduler, not the work."""


@app.task("sleep")
async def sleep(ctx: TaskContext) -> None:
    """Sleeps for the number of milliseconds in the payload (ASCII digits), e.g. b"5"."""
    await asyncio.sleep(int(ctx.payload or b"0") / 1000)
