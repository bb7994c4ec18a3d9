"""taskiq with `RedisStreamBroker`: `taskiq worker loadtest.peers.taskiq_peer:broker`."""

from __future__ import annotations

import asyncio
import os
import sys
from importlib.metadata import version
from pathlib import Path

from homeport.loadtest.peers.base import OneRunContender, apaced
from homeport.loadtest.peers.marker import mark
from taskiq_redis import RedisStreamBroker

broker = RedisStreamBroker(os.environ.get("HP_BENCH_REDIS", "redis://127.0.0.1:6379/0"))


@broker.task(task_name="noop")
async def noop(stamp: float) -> None:
    mark(stamp)


class TaskiqContender(OneRunContender):
    name = "taskiq"
    changed = ("--workers 1 (the default starts two worker processes)",)

    def worker_cmd(self) -> list[str]:
        return [
            str(Path(sys.executable).with_name("taskiq")),
            "worker",
            "homeport.loadtest.peers.taskiq_peer:broker",
            "--workers",
            "1",
        ]

    def _run(self, n: int, stamped: bool, rate: float | None, stamp: float | None) -> None:
        async def main() -> None:
            await broker.startup()
            try:
                if stamp is not None:
                    await noop.kiq(stamp)
                else:
                    await apaced(n, stamped, rate, lambda s: noop.kiq(s))
            finally:
                await broker.shutdown()

        asyncio.run(main())

    def version(self) -> str:
        return version("taskiq") + f" (taskiq-redis {version('taskiq-redis')})"
