"""The record writer under a real PostgreSQL fault: a write that fails (its connection
terminated by the server) is retried, and everyone who waited on it, or called
`flushed()` while it was in flight, is woken by the retry, with every record written."""

from __future__ import annotations

import asyncio

import asyncpg
from homeport.core.metrics import Metrics
from homeport.core.recorder import RecordWriter
from homeport.core.store import RecordStore, Status, TaskRecord

from tests.conftest import session_security, wait_for


def _rec(task_id: str) -> TaskRecord:
    return TaskRecord(
        id=task_id, partition_key="k", partition=0, region="us-east", kind="noop",
        status=Status.SUCCEEDED, attempts=1,
    )  # fmt: skip


async def test_waiters_of_a_failed_write_are_woken_by_its_retry(
    pg_dsn: str, store: RecordStore
) -> None:
    metrics = Metrics()
    writer = RecordWriter(store, metrics)
    writer.start()
    admin = await asyncpg.connect(pg_dsn, **session_security().pg_kwargs())
    try:
        # Hold the table so the writer's first write blocks in the server.
        locker = await asyncpg.connect(pg_dsn, **session_security().pg_kwargs())
        lock = locker.transaction()
        await lock.start()
        await locker.execute("LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE")

        async def blocked_backends() -> list[int]:
            rows = await admin.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            return [r["pid"] for r in rows]

        async def blocked() -> bool:
            return bool(await blocked_backends())

        async def write_failed() -> bool:
            return metrics.value("homeport_loop_errors_total", loop="record-writer") > 0

        writer.task(_rec("first"))
        first = asyncio.create_task(writer.flushed())
        await wait_for(blocked, 10, "the write to block")
        # Given while the write is in flight: goes in the next batch.
        writer.task(_rec("second"))
        second = asyncio.create_task(writer.flushed())
        await asyncio.sleep(0.05)
        assert not first.done() and not second.done()

        # The fault: the server terminates the writing connection; the write fails.
        for pid in await blocked_backends():
            await admin.execute("SELECT pg_terminate_backend($1)", pid)
        await wait_for(write_failed, 10, "the failed write to be counted")
        await lock.rollback()
        await locker.close()

        await asyncio.wait_for(asyncio.gather(first, second), 10)
        ids = {r["id"] for r in await admin.fetch("SELECT id FROM tasks")}
        assert ids == {"first", "second"}
    finally:
        admin.terminate()
        await asyncio.wait_for(writer.stop(), 10)
