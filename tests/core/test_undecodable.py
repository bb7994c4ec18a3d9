"""Entries that are no task blob of a known version (issue 18, point 3a): dead-lettered
with their reason and acked, counted, and the partition goes on."""

from __future__ import annotations

from homeport.core.app import App, TaskContext
from homeport.core.broker import Broker
from homeport.core.keys import GROUP, RegionKeys
from homeport.core.metrics import Metrics
from homeport.core.partitioner import partition_of
from homeport.core.producer import Producer
from homeport.core.task import new_task

from tests.conftest import running_worker, wait_for

from .conftest import REGION, make_settings


async def test_undecodable_and_unknown_version_entries_are_dead_lettered_and_acked(
    redis_url: str, broker: Broker
) -> None:
    settings = make_settings(redis_url)
    pk = RegionKeys(REGION).partition(0)
    key = next(f"k{i}" for i in range(1000) if partition_of(f"k{i}", settings.partitions) == 0)
    app = App()
    ran: list[str] = []

    @app.task("known")
    async def known(ctx: TaskContext) -> None:
        ran.append(ctx.task_id)

    # Written before the worker starts, so its first read meets them ahead of a good task.
    await broker.ensure_group(pk)
    garbage = await broker.raw(pk.stream, lambda c: c.xadd(pk.stream, {"t": b"\xc1not msgpack"}))
    future = await broker.raw(pk.stream, lambda c: c.xadd(pk.stream, {"v": "2", "t": b"\x90"}))
    good = new_task(key, "known")
    await Producer(broker, settings).submit(good, epoch=0)
    metrics = Metrics()

    async def pending() -> int:
        summary = await broker.raw(pk.stream, lambda c: c.xpending(pk.stream, GROUP))
        return int(summary["pending"])

    async with running_worker(app, settings, metrics=metrics):

        async def settled() -> bool:
            return ran == [good.id] and await pending() == 0

        await wait_for(settled, 10, "the good task to run and every entry to be acked")
    dead = await broker.raw(pk.dead, lambda c: c.xrange(pk.dead))
    by_src = {f[b"src"].decode(): f for _, f in dead}
    assert set(by_src) == {garbage.decode(), future.decode()}
    assert b"is not a task blob" in by_src[garbage.decode()][b"err"]
    assert by_src[garbage.decode()][b"t"] == b"\xc1not msgpack", "the original fields are kept"
    assert b"entry version b'2' is unknown" in by_src[future.decode()][b"err"]

    def counted(reason: str) -> float | None:
        return metrics.registry.get_sample_value(
            "homeport_undecodable_entries_total",
            {"region": REGION, "partition": "0", "reason": reason},
        )

    assert counted("decode") == 1
    assert counted("version") == 1
