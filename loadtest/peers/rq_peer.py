"""RQ: `rq worker --worker-class rq.worker.SimpleWorker` (no fork per job)."""

from __future__ import annotations

import sys
from importlib.metadata import version
from pathlib import Path

import redis
from homeport.loadtest.peers.base import Contender, paced
from homeport.loadtest.peers.marker import mark
from rq import Queue

_PIPE = 500


def noop(stamp: float) -> None:
    mark(stamp)


class RQContender(Contender):
    name = "RQ"
    changed = (
        "SimpleWorker: runs jobs in the worker process (the default Worker forks a child per job)",
        "throughput enqueue with Queue.enqueue_many in pipelines of 500 (RQ's bulk API)",
    )

    def __init__(self, redis_url: str) -> None:
        super().__init__(redis_url)
        self.conn = redis.Redis.from_url(redis_url)
        self.queue = Queue("hpbench", connection=self.conn)

    def worker_cmd(self) -> list[str]:
        return [
            str(Path(sys.executable).with_name("rq")),
            "worker",
            "hpbench",
            "--url",
            self.redis_url,
            "--worker-class",
            "rq.worker.SimpleWorker",
            "--quiet",
        ]

    def submit(self, n: int, stamped: bool = False, rate: float | None = None) -> None:
        if stamped or rate:
            paced(n, stamped, rate, lambda stamp: self.queue.enqueue(noop, stamp))
            return
        for lo in range(0, n, _PIPE):
            with self.conn.pipeline() as pipe:
                self.queue.enqueue_many(
                    [Queue.prepare_data(noop, (0.0,)) for _ in range(min(_PIPE, n - lo))],
                    pipeline=pipe,
                )
                pipe.execute()

    def probe(self) -> None:
        self.queue.enqueue(noop, -1.0)

    def version(self) -> str:
        return version("rq")
