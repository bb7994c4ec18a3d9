"""The application the gateway tests run in workers (`tests.router.apps:app`).

Handlers record every execution in `EXECUTIONS` (in-process workers) so tests can count
runs; `flaky` fails while `FAILING` holds its key, which lets a test dead-letter a task and
then requeue it successfully.
"""

from __future__ import annotations

from collections import Counter

from homeport.core.app import App, TaskContext

app = App("router-tests")
EXECUTIONS: Counter[str] = Counter()
FAILING: set[str] = set()


@app.task("echo")
async def echo(ctx: TaskContext) -> bytes:
    EXECUTIONS[ctx.task_id] += 1
    return ctx.payload


@app.task("noop")
async def noop(ctx: TaskContext) -> None:
    EXECUTIONS[ctx.task_id] += 1


@app.task("flaky", backoff_base_s=0.01, backoff_max_s=0.02)
async def flaky(ctx: TaskContext) -> bytes:
    EXECUTIONS[ctx.task_id] += 1
    if ctx.partition_key in FAILING:
        raise RuntimeError(f"flaky handler told to fail for key {ctx.partition_key}")
    return b"recovered"
