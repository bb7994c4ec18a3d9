"""The record store: migrations and the forward-only status rule."""

from __future__ import annotations

import dataclasses
import time

from homeport.core.store import AttemptRecord, RecordStore, Status, TaskRecord, supersedes


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


async def test_sql_and_python_agree_on_the_forward_only_rule(store: RecordStore) -> None:
    """`supersedes` (the recorder's in-memory merge) and the upsert's SQL are one rule in
    two languages: for every pair of recorded and new (status, attempts), PostgreSQL keeps
    what `supersedes` says."""
    states = [(s, a) for s in Status if s is not Status.FAILED for a in (1, 2)]
    pairs = [(old, new) for old in states for new in states]
    olds, news = [], []
    for n, ((os_, oa), (ns, na)) in enumerate(pairs):
        olds.append(dataclasses.replace(_rec(os_, oa), id=f"rule-{n}"))
        news.append(dataclasses.replace(_rec(ns, na), id=f"rule-{n}"))
    await store.write(olds, [])
    await store.write(news, [])
    for old, new in zip(olds, news, strict=True):
        kept = (await store.get_task(old.id)).status
        expected = new.status if supersedes(old, new) else old.status
        assert kept == expected, f"{old.status}#{old.attempts} then {new.status}#{new.attempts}"
    assert sum(supersedes(o, n) for o, n in zip(olds, news, strict=True)) not in (0, len(pairs))
