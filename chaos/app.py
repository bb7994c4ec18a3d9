"""The application game-day workers run (`--app chaos.app:app`): one handler, `step`,
that holds the task for the milliseconds named in its payload, like a short real job.

Every execution is also journaled by the handler itself, when HOMEPORT_CHAOS_JOURNAL
names a file: one JSON line at start and one at the end, appended with O_APPEND (whole
lines from concurrent workers interleave, never mix). This journal is the checker's
independent record of executions: it survives a SIGKILL between the run and the
engine's batched `attempts` write, and it does not trust the system under test to report
on itself. `chaos.collect` enriches it with the `attempts` rows (epoch, worker id).

The region that *hosts* an execution (after a failover, the standby runs the home's
tasks) is the `--region` of the region agent that started this worker: the worker's
parent process (see `regions.agent`). HOMEPORT_CHAOS_HOST overrides it.
"""

from __future__ import annotations

import asyncio
import json
import os
import time

from homeport.core.app import App, TaskContext

app = App("chaos")
_fd: list[int] = []
_host: list[str] = []


def _hosting_region(default: str) -> str:
    """The `--region` of the agent that runs this worker (its parent), read once."""
    if not _host:
        found = os.environ.get("HOMEPORT_CHAOS_HOST", "")
        if not found:
            try:
                with open(f"/proc/{os.getppid()}/cmdline", "rb") as cmdline:
                    argv = cmdline.read().decode(errors="replace").split("\0")
            except OSError:
                argv = []
            if "agent" in argv and "--region" in argv[:-1]:
                found = argv[argv.index("--region") + 1]
        _host.append(found or default)
    return _host[0]


def _journal(record: dict[str, object]) -> None:
    path = os.environ.get("HOMEPORT_CHAOS_JOURNAL")
    if not path:
        return
    if not _fd:
        _fd.append(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
    os.write(_fd[0], (json.dumps(record) + "\n").encode())


@app.task("probe")
async def probe(ctx: TaskContext) -> None:
    """The runner's warm-up task (`chaos.runner`): runs, journals nothing, so it is no part
    of the history the checker judges."""


@app.task("step")
async def step(ctx: TaskContext) -> None:
    base = {"task_id": ctx.task_id, "attempt": ctx.attempt, "pid": os.getpid(),
            "region": _hosting_region(ctx.region)}  # fmt: skip
    _journal({**base, "start": time.time()})
    ms = float(ctx.payload or b"0")
    if ms > 0:
        await asyncio.sleep(ms / 1000)
    _journal({**base, "end": time.time()})
