"""arq: `arq loadtest.peers.arq_peer.WorkerSettings` (defaults: 0.5 s poll, 10 jobs)."""

from __future__ import annotations

import asyncio
import os
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

from arq import create_pool
from arq.connections import RedisSettings
from homeport.loadtest.peers.base import Contender, apaced
from homeport.loadtest.peers.marker import mark

_SETTINGS = RedisSettings.from_dsn(os.environ.get("HP_BENCH_REDIS", "redis://127.0.0.1:6379/0"))


async def noop(ctx: dict[str, Any], stamp: float) -> None:
    mark(stamp)


class WorkerSettings:
    functions = [noop]
    redis_settings = _SETTINGS


class ArqContender(Contender):
    name = "arq"
    changed = ()

    def worker_cmd(self) -> list[str]:
        return [
            str(Path(sys.executable).with_name("arq")),
            "homeport.loadtest.peers.arq_peer.WorkerSettings",
        ]

    def submit(self, n: int, stamped: bool = False, rate: float | None = None) -> None:
        async def main() -> None:
            pool = await create_pool(RedisSettings.from_dsn(self.redis_url))
            try:
                await apaced(n, stamped, rate, lambda s: pool.enqueue_job("noop", s))
            finally:
                await pool.aclose()

        asyncio.run(main())

    def probe(self) -> None:
        async def main() -> None:
            pool = await create_pool(RedisSettings.from_dsn(self.redis_url))
            await pool.enqueue_job("noop", -1.0)
            await pool.aclose()

        asyncio.run(main())

    def version(self) -> str:
        return version("arq")
