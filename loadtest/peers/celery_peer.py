"""Celery with its Redis broker: `celery -A loadtest.peers.celery_peer worker --pool solo`."""

from __future__ import annotations

import os
from importlib.metadata import version

from celery import Celery
from homeport.loadtest.peers.base import Contender, paced, python_m
from homeport.loadtest.peers.marker import mark

app = Celery("hpbench", broker=os.environ.get("HP_BENCH_REDIS", "redis://127.0.0.1:6379/0"))


@app.task(name="noop")
def noop(stamp: float) -> None:
    mark(stamp)


class CeleryContender(Contender):
    name = "Celery"
    changed = (
        "worker --pool solo: one process running one task at a time (the default "
        "prefork pool forks one child per core)",
    )

    def worker_cmd(self) -> list[str]:
        return python_m(
            "celery",
            "-A",
            "homeport.loadtest.peers.celery_peer",
            "worker",
            "--pool",
            "solo",
            "--loglevel",
            "WARNING",
        )

    def submit(self, n: int, stamped: bool = False, rate: float | None = None) -> None:
        paced(n, stamped, rate, lambda stamp: noop.delay(stamp))

    def probe(self) -> None:
        noop.delay(-1.0)

    def version(self) -> str:
        return version("celery")
