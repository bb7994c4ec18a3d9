"""Dramatiq with its Redis broker: `dramatiq loadtest.peers.dramatiq_peer --processes 1`."""

from __future__ import annotations

import os
import sys
from importlib.metadata import version
from pathlib import Path

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from homeport.loadtest.peers.base import Contender, paced
from homeport.loadtest.peers.marker import mark

broker = RedisBroker(url=os.environ.get("HP_BENCH_REDIS", "redis://127.0.0.1:6379/0"))
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name="hpbench")
def noop(stamp: float) -> None:
    mark(stamp)


class DramatiqContender(Contender):
    name = "Dramatiq"
    changed = (
        "--processes 1 (the default starts one worker process per core); threads "
        "stay at the default 8",
    )

    def worker_cmd(self) -> list[str]:
        return [
            str(Path(sys.executable).with_name("dramatiq")),
            "homeport.loadtest.peers.dramatiq_peer",
            "--processes",
            "1",
        ]

    def submit(self, n: int, stamped: bool = False, rate: float | None = None) -> None:
        paced(n, stamped, rate, lambda stamp: noop.send(stamp))

    def probe(self) -> None:
        noop.send(-1.0)

    def version(self) -> str:
        return version("dramatiq")
