"""streaQ (Redis Streams, the closest design to homeport's):
`streaq run homeport.loadtest.peers.streaq_peer:worker`."""

from __future__ import annotations

import asyncio
import os
import sys
from importlib.metadata import version
from pathlib import Path

from homeport.loadtest.peers.base import OneRunContender, apaced
from homeport.loadtest.peers.marker import mark
from streaq import Worker

worker = Worker(redis_url=os.environ.get("HP_BENCH_REDIS", "redis://127.0.0.1:6379/0"))


@worker.task
async def noop(stamp: float) -> None:
    mark(stamp)


class StreaqContender(OneRunContender):
    name = "streaq"
    changed = ()

    def worker_cmd(self) -> list[str]:
        return [
            str(Path(sys.executable).with_name("streaq")),
            "run",
            "homeport.loadtest.peers.streaq_peer:worker",
        ]

    def _run(self, n: int, stamped: bool, rate: float | None, stamp: float | None) -> None:
        async def main() -> None:
            async with worker:
                if stamp is not None:
                    await noop.enqueue(stamp)
                else:
                    await apaced(n, stamped, rate, lambda s: noop.enqueue(s))

        asyncio.run(main())

    def version(self) -> str:
        return version("streaq")
