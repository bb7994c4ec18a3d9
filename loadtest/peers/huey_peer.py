"""Huey with Redis: `huey_consumer loadtest.peers.huey_peer.huey` (defaults: 1 thread)."""

from __future__ import annotations

import os
import sys
from importlib.metadata import version
from pathlib import Path

from homeport.loadtest.peers.base import Contender, paced
from homeport.loadtest.peers.marker import mark
from huey import RedisHuey

huey = RedisHuey("hpbench", url=os.environ.get("HP_BENCH_REDIS", "redis://127.0.0.1:6379/0"))


@huey.task()
def noop(stamp: float) -> None:
    mark(stamp)


class HueyContender(Contender):
    name = "Huey"
    changed = ()

    def worker_cmd(self) -> list[str]:
        return [
            str(Path(sys.executable).with_name("huey_consumer")),
            "homeport.loadtest.peers.huey_peer.huey",
            "--quiet",
        ]

    def submit(self, n: int, stamped: bool = False, rate: float | None = None) -> None:
        paced(n, stamped, rate, lambda stamp: noop(stamp))

    def probe(self) -> None:
        noop(-1.0)

    def version(self) -> str:
        return version("huey")
