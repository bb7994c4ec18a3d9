"""SAQ: `saq loadtest.peers.saq_peer.settings` (defaults: concurrency 10)."""

from __future__ import annotations

import asyncio
import os
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

from homeport.loadtest.peers.base import OneRunContender, apaced
from homeport.loadtest.peers.marker import mark
from saq import Queue


async def noop(ctx: dict[str, Any], *, stamp: float) -> None:
    mark(stamp)


settings = {
    "queue": Queue.from_url(os.environ.get("HP_BENCH_REDIS", "redis://127.0.0.1:6379/0")),
    "functions": [noop],
}


class SaqContender(OneRunContender):
    name = "SAQ"
    changed = ()

    def worker_cmd(self) -> list[str]:
        return [
            str(Path(sys.executable).with_name("saq")),
            "homeport.loadtest.peers.saq_peer.settings",
        ]

    def _run(self, n: int, stamped: bool, rate: float | None, stamp: float | None) -> None:
        async def main() -> None:
            queue = Queue.from_url(self.redis_url)
            await queue.connect()
            try:
                if stamp is not None:
                    await queue.enqueue("noop", stamp=stamp)
                else:
                    await apaced(n, stamped, rate, lambda s: queue.enqueue("noop", stamp=s))
            finally:
                await queue.disconnect()

        asyncio.run(main())

    def version(self) -> str:
        return version("saq")
