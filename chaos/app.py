"""The application game-day workers run (`--app chaos.app:app`): one handler, `step`,
that holds the task for the milliseconds named in its payload, like a short real job.

Every execution is also journaled by the handler itself, when HOMEPORT_CHAOS_JOURNAL
names a file: one JSON line at start and one at the end, appended with O_APPEND (whole
lines from concurrent workers interleave, never mix). This journal is the checker's
independent record of executions: it survives a SIGKILL between the run and the
engine's batched `attempts` write, and it does not trust the system under test to report
on itself. `chaos.collect` enriches it with the `attempts` rows (epoch, worker id).
"""

from __future__ import annotations

import asyncio
import json
import os
import time

from core.app import App, TaskContext

app = App("chaos")
_fd: list[int] = []


def _journal(record: dict[str, object]) -> None:
    path = os.environ.get("HOMEPORT_CHAOS_JOURNAL")
    if not path:
        return
    if not _fd:
        _fd.append(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
    os.write(_fd[0], (json.dumps(record) + "\n").encode())


@app.task("step")
async def step(ctx: TaskContext) -> None:
    base = {"task_id": ctx.task_id, "attempt": ctx.attempt, "pid": os.getpid(),
            "region": os.environ.get("HOMEPORT_CHAOS_HOST", ctx.region)}  # fmt: skip
    _journal({**base, "start": time.time()})
    ms = float(ctx.payload or b"0")
    if ms > 0:
        await asyncio.sleep(ms / 1000)
    _journal({**base, "end": time.time()})
