#!/usr/bin/env python3
"""A worker's CPU per task, start-up excluded, from the kernel's accounting (rusage).

    .venv/bin/python scripts/worker-cpu.py REDIS_URL PG_DSN [--tasks 30000] [--runs 2]

Per run: flush REDIS_URL, run `homeport worker --burst` of the peer benchmark's app with
nothing to do (its CPU is the start and the shutdown), then enqueue N ordered no-op tasks
with this tree's `Producer` and run the same burst worker on them. CPU per task =
(CPU of the busy run − CPU of the idle run) / N, user and system apart; the wall rate is
N / (busy wall − idle wall). Records go to PG_DSN (migrated by the worker's tree).

Unlike `homeport bench drain`, which reads `time.process_time()` inside the worker
between the first and the last handler start, this counts everything the process spends,
threads and system calls included, and needs nothing from the worker but its CLI: the
same script measures an older checkout (`git worktree add /tmp/before <commit>`, its own
virtualenv) for a before/after in one run (docs/benchmarks.md, fifteenth session).
It flushes the whole Redis database: point it at a bench server, never a live one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import time

from homeport.core.broker import Broker
from homeport.core.producer import Producer
from homeport.core.settings import Settings
from homeport.core.task import new_task

APP = "homeport.loadtest.peers.homeport_peer:app"
REGION, PARTITIONS, KEYS = "bench", 16, 1024


def worker_argv(redis_url: str, pg_dsn: str) -> list[str]:
    argv = [sys.executable, "-m", "homeport", "worker", "--app", APP, "--region", REGION,
            "--partitions", str(PARTITIONS), "--redis-url", redis_url, "--pg-dsn", pg_dsn,
            "--admin-port", "-1", "--burst"]  # fmt: skip
    helptext = subprocess.run(argv[:4] + ["--help"], capture_output=True, text=True).stdout
    if "--insecure" in helptext:  # older trees have no credentials, and no flag
        argv.append("--insecure")
    return argv


async def enqueue(settings: Settings, n: int) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(settings.redis_url)
    await client.flushdb()
    await client.aclose()
    if not n:
        return
    broker = Broker.from_settings(settings)
    await broker.connect()
    producer = Producer(broker, settings)
    for lo in range(0, n, 5000):
        batch = [new_task(f"k{i % KEYS}", "noop", b"0.0") for i in range(lo, min(n, lo + 5000))]
        await producer.submit_many(batch, epoch=0)
    await broker.close()


def burst(argv: list[str], settings: Settings, n: int) -> tuple[float, float, float]:
    """(user s, system s, wall s) of one burst worker on `n` queued tasks."""
    asyncio.run(enqueue(settings, n))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    env = {**os.environ, "HP_BENCH_MODE": "none"}  # the peers' marker counts nothing
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("redis_url")
    parser.add_argument("pg_dsn")
    parser.add_argument("--tasks", type=int, default=30_000)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    settings = Settings(
        region=REGION, partitions=PARTITIONS, redis_url=args.redis_url, pg_dsn=args.pg_dsn
    )
    argv = worker_argv(args.redis_url, args.pg_dsn)
    n = args.tasks
    per_task: list[float] = []
    for run in range(1, args.runs + 1):
        iu, isys, iwall = burst(argv, settings, 0)
        bu, bsys, bwall = burst(argv, settings, n)
        us = ((bu + bsys) - (iu + isys)) * 1e6 / n
        per_task.append(us)
        print(
            f"run {run}/{args.runs}: idle worker {iu + isys:.2f} s CPU, {iwall:.2f} s wall; "
            f"{n:,} tasks {bu + bsys:.2f} s CPU, {bwall:.2f} s wall; per task {us:.0f} µs "
            f"(user {(bu - iu) * 1e6 / n:.0f}, system {(bsys - isys) * 1e6 / n:.0f}); "
            f"rate {n / max(1e-9, bwall - iwall):,.0f} tasks/s",
            flush=True,
        )
    print(f"median of {args.runs}: {statistics.median(per_task):.0f} µs of worker CPU per task")


if __name__ == "__main__":
    main()
