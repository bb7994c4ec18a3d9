"""Long admin actions (promote, failback) run as jobs so the page can show each step as
it happens: the handler starts the job and redirects to its page, which polls
`/jobs/<id>.json` for new steps until the job is done or failed.

Jobs live in memory for the console's lifetime (the failover history in etcd is the
durable record); at most `KEEP` are kept.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)
KEEP = 50

Say = Callable[[str], None]


@dataclass
class Job:
    id: str
    title: str
    started: float = field(default_factory=time.time)
    steps: list[str] = field(default_factory=list)
    state: str = "running"  # running | done | failed
    outcome: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "title": self.title, "state": self.state, "steps": self.steps,
            "outcome": self.outcome, "started": self.started,
        }  # fmt: skip


class Jobs:
    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def start(
        self,
        title: str,
        work: Callable[[Say], Awaitable[str]],
        expected: tuple[type[BaseException], ...],
    ) -> Job:
        """Run `work(say)` in the background. Its return is the outcome line; an error
        of an `expected` type fails the job with its message (a refusal the operator
        can act on). Anything else fails it with the type and message, logged in full."""
        job = Job(secrets.token_hex(6), title)
        self._jobs[job.id] = job
        while len(self._jobs) > KEEP:
            self._jobs.pop(next(iter(self._jobs)))

        async def run() -> None:
            try:
                job.outcome = await work(job.steps.append)
                job.state = "done"
            except expected as exc:
                job.state, job.outcome = "failed", str(exc)
            except Exception as exc:  # noqa: BLE001 - shown as text; the log has the trace
                log.exception("console job %s (%s) failed", job.id, title)
                job.state, job.outcome = "failed", f"{type(exc).__name__}: {exc}"

        task = asyncio.create_task(run(), name=f"console-job-{job.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    async def close(self, grace_s: float = 60.0) -> None:
        """Let running jobs finish (a promotion cut in half leaves a home between two
        copies), then cancel whatever is still running after `grace_s` seconds."""
        if not self._tasks:
            return
        _, late = await asyncio.wait(set(self._tasks), timeout=grace_s)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
