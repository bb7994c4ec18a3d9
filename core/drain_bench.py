"""`homeport bench drain`: one worker process draining N queued no-op tasks.

Per run and kind (ordered, unordered): the region (`benchd` by default) is emptied, N
no-op tasks are enqueued with `Producer.submit_many` on 1,024 keys, and only then is a
real `homeport worker` process started (`--burst`, records in PostgreSQL when a DSN is
given). The no-op handler notes the unix time of the first and the N-th handler start in
a file (`HP_DRAIN_OUT`). Two figures per run:

- start: worker process spawned → first handler start (imports, connect, lease
  election, first assignment, first read);
- drain: N-1 / (N-th start − first start), tasks/s, so start-up is not counted.

Beside them, in the same run, the raw Redis stream limit (`bench engine`'s raw phase:
pipelined XADD, XREADGROUP COUNT 500 + XACK in a child process). It prints every run and
the medians of `--runs`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import click
from homeport.core.app import App, TaskContext
from homeport.core.bench import engine_bench_options
from homeport.core.processes import processes_option
from homeport.core.settings import Settings
from homeport.core.supervisor import Child, ChildFailed

drain_app = App("drainbench")
# The unordered kind in an app of its own: an app with only unordered kinds reads in
# batches sized to its free handler slots (core/batchpath.py).
drain_app_u = App("drainbench-u")
_KEYS = 1024
KINDS = {"ordered": "noop", "unordered": "noop_u"}
# Shared by the worker processes of `--processes N` (made before they fork; only in a
# worker the bench started, which sets HP_DRAIN_N).
_SHARED = (
    (
        mp.get_context("fork").Value("q", 0),
        mp.get_context("fork").Value("d", 0.0),
        mp.get_context("fork").Value("d", 0.0),
    )
    if os.environ.get("HP_DRAIN_N")
    else None
)


# The count to reach, and whether one process drains alone: then the handler counts
# without the shared lock (a semaphore per task was 5 % of a one-process drain's samples,
# py-spy, 2026-12-02: the bench's own cost, not the worker's).
_N = int(os.environ.get("HP_DRAIN_N", "0"))
_SOLO = os.environ.get("HP_DRAIN_PROCESSES", "1") == "1"


def _mark() -> None:
    now = time.time()
    if _SHARED is None:
        return
    count, first, cpu = _SHARED
    # The ctypes value itself: a Synchronized's .value would take its lock every time.
    with contextlib.nullcontext() if _SOLO else count.get_lock():
        raw = count.get_obj()
        n = raw.value = raw.value + 1
        if n == 1:
            first.value = now
            cpu.value = time.process_time()
    if n == _N:
        out = Path(os.environ["HP_DRAIN_OUT"])
        tmp = out.with_suffix(".tmp")
        # CPU seconds of this process between the first and the N-th start (with one
        # worker process, the worker's CPU per task; load on the machine barely moves it).
        spent = time.process_time() - cpu.value
        tmp.write_text(json.dumps({"first": first.value, "last": now, "cpu": spent}))
        tmp.replace(out)


@drain_app.task("noop")
async def noop(ctx: TaskContext) -> None:
    _mark()


@drain_app_u.task("noop_u", ordered=False)
async def noop_u(ctx: TaskContext) -> None:
    _mark()


async def _enqueue(settings: Settings, n: int, kind: str, payload: bytes) -> None:
    from homeport.core.broker import Broker
    from homeport.core.producer import Producer
    from homeport.core.task import new_task

    broker = Broker.from_settings(settings)
    await broker.connect()
    producer = Producer(broker, settings)
    for lo in range(0, n, 5000):
        tasks = [new_task(f"key-{i % _KEYS}", kind, payload) for i in range(lo, min(n, lo + 5000))]
        results = await producer.submit_many(tasks, epoch=0)
        bad = next((r for r in results if not r.ok), None)
        if bad is not None:
            raise click.ClickException(f"submit failed: {bad.error}")
    await broker.close()


def _worker_argv(settings: Settings, processes: int, kind: str) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "homeport",
        "worker",
        "--app",
        "homeport.core.drain_bench:"
        + ("drain_app_u" if kind == KINDS["unordered"] else "drain_app"),
        "--region",
        settings.region,
        "--partitions",
        str(settings.partitions),
        "--redis-url",
        settings.redis_url,
        *(["--pg-dsn", settings.pg_dsn] if settings.pg_dsn else ["--no-records"]),
        "--admin-port",
        "-1",
        "--burst",
        "--insecure",  # a bench takes plain URLs (docs/benchmarks.md)
    ]
    if processes > 1:
        argv += ["--processes", str(processes)]
    return argv


def drain_once(
    settings: Settings, n: int, kind: str, processes: int = 1
) -> tuple[float, float, float]:
    """(seconds from spawn to first handler start, drain tasks/s, worker CPU µs per task
    while draining) of one run."""
    from homeport.core.bench import _clean

    asyncio.run(_clean(settings))
    asyncio.run(_enqueue(settings, n, kind, b"x" * 64))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "drain.json"
        env = {
            **os.environ,
            "HP_DRAIN_N": str(n),
            "HP_DRAIN_OUT": str(out),
            "HP_DRAIN_PROCESSES": str(processes),
        }
        spawned = time.time()
        argv = _worker_argv(settings, processes, kind)
        worker = Child.start("worker", argv, Path(tmp) / "worker.log", env=env)
        try:
            worker.wait_ready(out.exists, 600, "done draining")
            doc = json.loads(out.read_text())
            worker.proc.wait(timeout=60)
        except ChildFailed as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            if worker.running:
                worker.kill()
    asyncio.run(_clean(settings))
    first, last = float(doc["first"]), float(doc["last"])
    return first - spawned, (n - 1) / max(1e-9, last - first), float(doc["cpu"]) * 1e6 / (n - 1)


def raw_limit(settings: Settings, n: int) -> float:
    """The raw Redis stream rate (tasks/s) of `bench engine`'s raw phase, one run."""
    from homeport.core.bench import _clean, _produce_raw, _raw_consumer, _timed, raw_blob

    blob = raw_blob(b"x" * 64)
    streams = [f"hpbench:{{{p}}}" for p in range(settings.partitions)]
    asyncio.run(_clean(settings))
    secs = _timed(
        _raw_consumer,
        (settings.redis_url, streams, n),
        _produce_raw(settings.redis_url, streams, n, blob),
    )
    asyncio.run(_clean(settings))
    return n / secs


@click.command("drain")
@engine_bench_options(tasks=20_000)
@click.option(
    "--kinds",
    default="ordered,unordered",
    show_default=True,
    help="Comma list of task kinds to drain: ordered (per-key FIFO) and/or unordered.",
)
@processes_option("Worker processes (`homeport worker --processes`); 1 = one plain worker.")
@click.option("--region", default="benchd", show_default=True, help="Region name used.")
def drain(
    redis_url: str,
    pg_dsn: str,
    n: int,
    runs: int,
    partitions: int,
    kinds: str,
    processes: int,
    region: str,
) -> None:
    """Worker start → first task, and steady drain of N queued tasks, beside raw Redis."""
    chosen = [k.strip() for k in kinds.split(",") if k.strip()]
    bad = [k for k in chosen if k not in KINDS]
    if bad:
        raise click.BadParameter(
            f"unknown kind {bad[0]!r}; use ordered and/or unordered", param_hint="--kinds"
        )
    from homeport.core.bench import bench_settings

    settings = bench_settings(region, partitions, redis_url, pg_dsn)
    click.echo(
        f"bench drain: {n} queued tasks, {partitions} partitions, {processes} worker "
        f"process(es), records {'on' if pg_dsn else 'off'}"
    )
    starts: dict[str, list[float]] = {k: [] for k in chosen}
    rates: dict[str, list[float]] = {k: [] for k in chosen}
    cpus: dict[str, list[float]] = {k: [] for k in chosen}
    raws: list[float] = []
    for run in range(1, runs + 1):
        line = [f"run {run}/{runs}:"]
        for k in chosen:
            start, rate, cpu = drain_once(settings, n, KINDS[k], processes)
            starts[k].append(start)
            rates[k].append(rate)
            cpus[k].append(cpu)
            line.append(f"{k} start {start:.3f} s drain {rate:,.0f}/s cpu {cpu:.0f} µs/task;")
        raws.append(raw_limit(settings, n))
        line.append(f"raw {raws[-1]:,.0f}/s")
        click.echo(" ".join(line))
    raw = statistics.median(raws)
    for k in chosen:
        r = statistics.median(rates[k])
        click.echo(
            f"median of {runs} [{k}]: start {statistics.median(starts[k]):.3f} s, "
            f"drain {r:,.0f} tasks/s, raw {raw:,.0f} tasks/s, ratio {r / raw:.3f}, "
            f"CPU {statistics.median(cpus[k]):.0f} µs/task (one process's)"
        )
