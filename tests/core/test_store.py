"""The record store: migrations and the forward-only status rule."""

from __future__ import annotations

import time

from homeport.core.store import AttemptRecord, RecordStore, Status, TaskRecord


def _rec(status: Status, attempts: int, **kw: object) -> TaskRecord:
    return TaskRecord(
        id="t1",
        partition_key="k",
        partition=3,
        region="us-east",
        kind="noop",
        status=status,
        attempts=attempts,
        **kw,
    )  # type: ignore[arg-type]


async def test_migrate_is_idempotent(store: RecordStore) -> None:
    assert await store.migrate() == []


async def test_status_never_moves_backwards(store: RecordStore) -> None:
    now = time.time()
    await store.write([_rec(Status.RUNNING, 1, started_at=now)], [])
    await store.write([_rec(Status.SUCCEEDED, 1, result=b"r", finished_at=now + 1)], [])
    # A late duplicate execution reports "running" and then "dead": neither may win.
    await store.write(
        [_rec(Status.RUNNING, 2, started_at=now + 2)],
        [
            AttemptRecord(
                "t1", 2, "1-1", "w2", "us-east", 3, Status.RUNNING, now + 2, duplicate=True
            )
        ],
    )
    await store.write([_rec(Status.DEAD, 2, error="late")], [])
    rec = await store.get_task("t1")
    assert (rec.status, rec.result, rec.error) == (Status.SUCCEEDED, b"r", None)
    assert rec.started_at is not None and abs(rec.started_at - now) < 1e-3
    attempts = await store.attempts("t1")
    assert [(a.attempt, a.duplicate) for a in attempts] == [(2, True)]


async def test_retrying_advances_with_attempts(store: RecordStore) -> None:
    await store.write([_rec(Status.RETRYING, 1)], [])
    await store.write([_rec(Status.RUNNING, 2)], [])
    assert (await store.get_task("t1")).status == Status.RUNNING
    await store.write([_rec(Status.RETRYING, 1)], [])  # stale, older attempt
    assert (await store.get_task("t1")).attempts == 2


async def test_cancel_does_not_touch_a_started_task(store: RecordStore) -> None:
    await store.write([_rec(Status.RUNNING, 1)], [])
    assert await store.mark_cancelled("t1", "k", 3, "us-east") == Status.RUNNING
    assert await store.mark_cancelled("t2", "k", 3, "us-east") == Status.CANCELLED
