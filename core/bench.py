"""`homeport bench engine`: engine throughput against the raw Redis limit, same machine.

One run has two timed phases, each with the producer in this process and the consumer in
a child process (as in production, and so both use the two cores):

- engine: `Producer.submit_many` of N validated no-op tasks (batches of 5000) while a
  `Worker` (own process, all partitions, records in PostgreSQL when a DSN is given) runs
  them; the clock stops when the worker has run all N and shut down (records flushed).
- raw: pipelined XADD (500 per pipeline) of blobs of the same size into the same number of
  streams, while a child XREADGROUPs (COUNT 500) and XACKs them; clock stops at N acked.

It prints both rates per run, the medians of `--runs` runs and their ratio. It uses its
own region name (`bench` by default) and deletes only that region's keys.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import statistics
import time
from collections.abc import Callable
from typing import Any

import click
from homeport.core.keys import GROUP, RegionKeys
from homeport.core.settings import Settings

_SUBMIT_BATCH = 5000
_RAW_PIPE = 500


def _bench_app(n: int, done: Any) -> Any:
    from homeport.core.app import App

    app = App("bench")
    count = [0]

    @app.task("noop")
    async def noop(ctx: Any) -> None:
        count[0] += 1
        if count[0] == n:
            done()

    return app


def _engine_consumer(settings: Settings, n: int, ready: Any, finished: Any) -> None:
    import uvloop
    from homeport.core.worker import Worker

    async def main() -> None:
        worker: Worker | None = None

        def done() -> None:
            if worker is not None:
                worker.request_stop()

        worker = Worker(_bench_app(n, done), settings)
        await worker.start()
        while worker.membership is None or len(worker.membership.consumers) < settings.partitions:
            await asyncio.sleep(0.01)
        ready.put(True)
        await worker.run()
        finished.put(time.time())

    uvloop.run(main())


async def consume_raw(
    client: Any,
    group: str,
    streams: list[str],
    count: int,
    *,
    until: int | None = None,
    each: Callable[[dict[bytes, bytes]], None] | None = None,
) -> int:
    """The raw limit's consumer: XREADGROUP every stream (COUNT `count`), call `each` on
    every entry's fields, XACK each reply in one pipeline. Runs until `until` entries are
    acked (for ever if None); returns how many were. Used by `bench engine`, `bench drain`
    and the peers bench, so all three measure the same floor."""
    acked = 0
    while until is None or acked < until:
        got: Any = await client.xreadgroup(
            group, "raw", dict.fromkeys(streams, ">"), count=count, block=100
        )
        if not got:
            continue
        async with client.pipeline(transaction=False) as pipe:
            for name, entries in got:
                if each is not None:
                    for _eid, fields in entries:
                        each(fields)
                pipe.xack(name, group, *[eid for eid, _ in entries])
                acked += len(entries)
            await pipe.execute()
    return acked


def _raw_consumer(url: str, streams: list[str], n: int, ready: Any, finished: Any) -> None:
    import redis.asyncio as aioredis
    import uvloop

    async def main() -> None:
        client = aioredis.Redis.from_url(url)
        for s in streams:
            await client.xgroup_create(s, GROUP, id="0", mkstream=True)
        ready.put(True)
        await consume_raw(client, GROUP, streams, _RAW_PIPE, until=n)
        finished.put(time.time())
        await client.aclose()

    uvloop.run(main())


async def _clean(settings: Settings) -> None:
    from homeport.core.broker import Broker

    broker = Broker.from_settings(settings)
    await broker.connect()
    rk = RegionKeys(settings.region)
    patterns = [f"hp:{{{settings.region}}}:*", f"hp:{{{settings.region}/*", "hpbench:*"]

    async def wipe(client: Any) -> None:
        for pattern in patterns:
            batch = [k async for k in client.scan_iter(match=pattern, count=1000)]
            for lo in range(0, len(batch), 1000):
                await client.unlink(*batch[lo : lo + 1000])

    await broker.raw(rk.workers, wipe)
    await broker.close()


async def _produce_engine(settings: Settings, n: int, payload: bytes) -> None:
    from homeport.core.broker import Broker
    from homeport.core.producer import Producer
    from homeport.core.task import new_task

    broker = Broker.from_settings(settings)
    await broker.connect()
    producer = Producer(broker, settings)
    for lo in range(0, n, _SUBMIT_BATCH):
        hi = min(n, lo + _SUBMIT_BATCH)
        tasks = [new_task(f"key-{i}", "noop", payload) for i in range(lo, hi)]
        results = await producer.submit_many(tasks, epoch=0)
        bad = next((r for r in results if not r.ok), None)
        if bad is not None:
            raise click.ClickException(f"submit failed: {bad.error}")
    await broker.close()


async def _produce_raw(url: str, streams: list[str], n: int, blob: bytes) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    for lo in range(0, n, _RAW_PIPE):
        async with client.pipeline(transaction=False) as pipe:
            for i in range(lo, min(n, lo + _RAW_PIPE)):
                pipe.xadd(streams[i % len(streams)], {"t": blob})
            await pipe.execute()
    await client.aclose()


def _timed(target: Any, args: tuple[Any, ...], produce: Any) -> float:
    ctx = mp.get_context("spawn")
    ready, finished = ctx.Queue(), ctx.Queue()
    child = ctx.Process(target=target, args=(*args, ready, finished))
    child.start()
    try:
        ready.get(timeout=60)
        started = time.time()
        asyncio.run(produce)
        ended = float(finished.get(timeout=600))
    finally:
        child.join(timeout=30)
        if child.is_alive():
            child.kill()
    return ended - started


def bench_settings(region: str, partitions: int, redis_url: str, pg_dsn: str) -> Settings:
    """Settings of a bench region (no admin port); migrates the record store if any.
    A bench takes plain URLs: it and the workers it starts run plain (`run_plain`)."""
    from homeport.core.security import run_plain

    run_plain()
    settings = Settings(
        region=region,
        partitions=partitions,
        redis_url=redis_url,
        pg_dsn=pg_dsn,
        admin_port=-1,
        dedup_window_s=60.0,
    )
    if pg_dsn:
        from homeport.core.store import RecordStore

        async def migrate() -> None:
            store = await RecordStore.connect(pg_dsn)
            await store.migrate()
            await store.close()

        asyncio.run(migrate())
    return settings


def raw_blob(payload: bytes) -> bytes:
    """A task blob of the entry layout's size, for the raw stream phase."""
    import msgpack

    blob: bytes = msgpack.packb(
        ["01" * 13, "key-0000000", "noop", payload, 0, 3, 0, "L", int(time.time() * 1000), 0, 0],
        use_bin_type=True,
    )
    return blob


def engine_bench_options(tasks: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The options `bench engine` and `bench drain` share: the Redis and record store to
    run on, tasks per run (`n`), runs, and partitions."""
    options = (
        click.option("--redis-url", default="redis://127.0.0.1:6379/0", show_default=True),
        click.option("--pg-dsn", default="", help="Record store DSN; empty = do not record."),
        click.option("--tasks", "n", type=int, default=tasks, show_default=True),
        click.option("--runs", type=int, default=3, show_default=True),
        click.option("--partitions", type=int, default=16, show_default=True),
    )

    def apply(command: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):  # the first listed shows first in --help
            command = option(command)
        return command

    return apply


@click.command("engine")
@engine_bench_options(tasks=50_000)
@click.option("--payload-bytes", type=int, default=64, show_default=True)
@click.option("--region", default="bench", show_default=True, help="Region name used.")
def engine(
    redis_url: str, pg_dsn: str, n: int, runs: int, partitions: int, payload_bytes: int, region: str
) -> None:
    """Produce, consume (and record) N no-op tasks; compare with raw stream commands."""
    settings = bench_settings(region, partitions, redis_url, pg_dsn)
    payload = b"x" * payload_bytes
    blob = raw_blob(payload)
    streams = [f"hpbench:{{{p}}}" for p in range(partitions)]
    engine_rates: list[float] = []
    raw_rates: list[float] = []
    click.echo(
        f"bench engine: {n} tasks, {partitions} partitions, {payload_bytes}-byte "
        f"payloads, records {'on (' + pg_dsn + ')' if pg_dsn else 'off'}"
    )
    for run in range(1, runs + 1):
        asyncio.run(_clean(settings))
        secs = _timed(_engine_consumer, (settings, n), _produce_engine(settings, n, payload))
        engine_rates.append(n / secs)
        asyncio.run(_clean(settings))
        raw_secs = _timed(
            _raw_consumer, (redis_url, streams, n), _produce_raw(redis_url, streams, n, blob)
        )
        raw_rates.append(n / raw_secs)
        asyncio.run(_clean(settings))
        click.echo(
            f"run {run}/{runs}: engine {n / secs:,.0f} tasks/s ({secs:.2f} s), "
            f"raw {n / raw_secs:,.0f} tasks/s ({raw_secs:.2f} s)"
        )
    e, r = statistics.median(engine_rates), statistics.median(raw_rates)
    click.echo(
        f"median of {runs}: engine {e:,.0f} tasks/s, raw XADD+XREADGROUP/XACK "
        f"{r:,.0f} tasks/s, ratio {e / r:.2f}"
    )
