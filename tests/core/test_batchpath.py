"""The batch path (core/batchpath.py, take.lua) against real Redis and PostgreSQL: queued
unordered tasks are read and begun in one call, each handler in a Task of its own; handlers
that suspend, fail, or were cancelled while queued still end as the per-task path ends
them, with their records, and nothing stays pending."""

from __future__ import annotations

import asyncio
import contextvars
import time

from homeport.core import verbs
from homeport.core.app import App, TaskContext
from homeport.core.broker import Broker, Finish, TakeKinds
from homeport.core.entry import Undecodable
from homeport.core.keys import GROUP, RegionKeys
from homeport.core.partitioner import partition_of
from homeport.core.producer import Producer
from homeport.core.settings import Settings
from homeport.core.store import RecordStore, Status
from homeport.core.task import new_task

from tests.conftest import running_worker, wait_for

from .conftest import make_settings

_SEEN: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="")


async def _all_done(
    broker: Broker, store: RecordStore, settings: Settings, ids: list[str], timeout: float
) -> None:
    """Wait until every task has a final record and no entry is pending."""

    async def final() -> bool:
        done = await store.tasks("id = ANY($1) AND status_rank = 3", ids)
        return len(done) == len(ids)

    await wait_for(final, timeout, f"{len(ids)} tasks to reach a final status")
    for p in range(settings.partitions):
        part = RegionKeys(settings.region).partition(p)
        await wait_for(lambda part=part: broker.drained(part), 10, "no entry pending")


async def test_queued_unordered_batch_runs_eagerly_and_ends_every_outcome_like_per_task(
    redis_url: str, pg_dsn: str, broker: Broker, store: RecordStore
) -> None:
    app = App()
    runners: list[str] = []
    leaked: list[str] = []

    @app.task("fast", ordered=False)
    async def fast(ctx: TaskContext) -> str:
        runners.append(asyncio.current_task().get_name())  # type: ignore[union-attr]
        if _SEEN.get():
            leaked.append(_SEEN.get())  # a handler's context var reached another handler
        _SEEN.set(ctx.task_id)
        return "done"

    @app.task("napper", ordered=False)
    async def napper(ctx: TaskContext) -> bytes:
        await asyncio.sleep(0.05)  # suspends: continues in a Task of its own
        return ctx.payload

    @app.task("flaky", ordered=False, backoff_base_s=0.05, backoff_max_s=0.05)
    async def flaky(ctx: TaskContext) -> None:
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")

    settings = make_settings(redis_url, pg_dsn, partitions=2)
    fast_tasks = [new_task(f"k{i % 7}", "fast") for i in range(300)]
    nappers = [new_task(f"n{i}", "napper", f"p{i}".encode()) for i in range(5)]
    flakies = [new_task(f"f{i}", "flaky") for i in range(3)]
    doomed = new_task("c0", "fast")
    producer = Producer(broker, settings)
    await producer.submit_many([*fast_tasks, *nappers, *flakies, doomed], epoch=0)
    pk = RegionKeys(settings.region).partition(partition_of("c0", settings.partitions))
    got = await verbs.cancel(broker, store, pk, doomed.id, "c0", settings.region)
    assert got[0], got  # queued, so cancelled before any worker read it

    ids = [t.id for t in [*fast_tasks, *nappers, *flakies, doomed]]
    async with running_worker(app, settings) as w:
        await _all_done(broker, store, settings, ids, 30)
        assert w.metrics.value("homeport_failed_total") == 3
        assert w.metrics.value("homeport_retried_total") == 3

    # The batch path ran: handlers a take began run in Tasks it named.
    assert any(name.startswith("take ") for name in runners), set(runners)
    assert len(runners) == len(fast_tasks)  # the cancelled one never ran
    assert leaked == []
    recs = {r.id: r for r in await store.tasks("id = ANY($1)", ids)}
    assert {recs[t.id].status for t in fast_tasks} == {Status.SUCCEEDED}
    assert {recs[t.id].result for t in fast_tasks} == {b"done"}
    assert all(recs[t.id].started_at is not None for t in fast_tasks)
    assert [recs[t.id].result for t in nappers] == [t.payload for t in nappers]
    assert recs[doomed.id].status == Status.CANCELLED
    for t in flakies:
        assert (recs[t.id].status, recs[t.id].attempts) == (Status.SUCCEEDED, 2)
        attempts = await store.attempts(t.id)
        assert [(a.attempt, a.status) for a in attempts] == [
            (1, Status.FAILED),
            (2, Status.SUCCEEDED),
        ]
        assert attempts[0].error == "RuntimeError: first attempt fails"
    one = await store.attempts(fast_tasks[0].id)
    assert [(a.attempt, a.status, a.duplicate) for a in one] == [(1, Status.SUCCEEDED, False)]
    assert await store.attempts(doomed.id) == []


async def test_a_batch_tasks_slot_hold_counts_the_take_round_trip(
    redis_url: str, pg_dsn: str, broker: Broker, store: RecordStore
) -> None:
    """The slot is taken before take.lua's round trip and held until the handler returns
    (issue 20: the hold is the capacity model's service time). A no-op handler runs for
    microseconds, so its hold is at least one Redis round trip only if it counts the take."""
    app = App()

    @app.task("noop", ordered=False)
    async def noop(ctx: TaskContext) -> None:
        return None

    settings = make_settings(redis_url, pg_dsn, partitions=2, concurrency=8)
    tasks = [new_task(f"h{i}", "noop") for i in range(400)]
    await Producer(broker, settings).submit_many(tasks, epoch=0)
    ids = [t.id for t in tasks]
    pings = []
    for _ in range(50):
        t0 = time.perf_counter()
        await broker.role()  # one Redis round trip
        pings.append(time.perf_counter() - t0)
    async with running_worker(app, settings) as w:

        async def final() -> bool:
            return len(await store.tasks("id = ANY($1) AND status_rank = 3", ids)) == len(ids)

        await wait_for(final, 30, f"{len(ids)} tasks to reach a final status")
        count = w.metrics.value("homeport_slot_hold_seconds_count")
        total = w.metrics.value("homeport_slot_hold_seconds_sum")
    assert count == len(ids)
    assert total / count >= min(pings), (total / count, min(pings))


async def test_take_begins_an_ordered_entry_only_as_the_first_of_a_free_key(
    redis_url: str, broker: Broker
) -> None:
    """take.lua's begin rule for ordered kinds: the first entry of its key in the read, and
    only if the caller holds nothing of that key; an entry of a kind without a handler
    holds its key too (it is dead-lettered in turn); unordered kinds ignore keys."""
    settings = make_settings(redis_url, partitions=1)
    pk = RegionKeys(settings.region).partition(0)
    await broker.ensure_group(pk)
    token = await broker.acquire(pk.lease, pk.fence, "w1", 10_000)
    assert token > 0
    rows = [
        ("k1", "o"),  # begun: first of a free key
        ("k1", "o"),  # behind k1's first
        ("k1", "u"),  # unordered: begun whatever its key
        ("k2", "o"),  # begun
        ("k3", "x"),  # no handler: not begun, and k3 waits behind it
        ("k3", "o"),
        ("kH", "o"),  # the caller still holds kH
        ("kH", "u"),  # begun
        ("k4", "o"),  # begun: the budget's last
        ("k5", "o"),  # the budget is spent
    ]
    tasks = [new_task(key, kind) for key, kind in rows]
    await Producer(broker, settings).submit_many(tasks, epoch=0)
    bad: list[Undecodable] = []
    got = await broker.take(
        pk, token, "w1", 100, TakeKinds.of(["u"], ["o"]), ["kH", "other"], 5, bad
    )
    assert bad == []
    assert [d.task_id for d, _ in got] == [t.id for t in tasks]
    assert [v for _, v in got] == [0, -2, 0, 0, -2, -2, -2, 0, 0, -2]
    begun = await broker.raw(pk.started, lambda c: c.hkeys(pk.started))
    assert sorted(b.decode() for b in begun) == sorted(
        t.id for t, (_, v) in zip(tasks, got, strict=True) if v == 0
    )


async def test_one_step_call_applies_its_finishes_then_begins_in_call_order(
    redis_url: str, broker: Broker
) -> None:
    """step.lua writes the started marks, acks and cancel marks of a whole call with one
    command of each kind (begin.lua), yet every op sees the ops before it in the call: a
    second begin of an entry counts the first, a finish drops only its own entry's mark, a
    cancelled entry is acked unrun, and a call larger than one command's chunk is whole."""
    settings = make_settings(redis_url, partitions=1)
    pk = RegionKeys(settings.region).partition(0)
    await broker.ensure_group(pk)
    token = await broker.acquire(pk.lease, pk.fence, "w1", 10_000)
    tasks = [new_task(f"k{i}", "u") for i in range(1504)]
    await Producer(broker, settings).submit_many(tasks, epoch=0)
    got = await broker.read_new(pk, "w1", 2000, 0)
    e = {d.task_id: d.entry_id for d in got}
    a, b, c, d_ = (t.id for t in tasks[:4])
    marks = lambda: broker.raw(pk.started, lambda r: r.hgetall(pk.started))  # noqa: E731

    # a begun twice in one call: the second begin sees the first (a duplicate).
    assert await broker.step(pk, token, "w1", [], [(e[a], a), (e[a], a), (e[b], b)], 0) == [
        0,
        1,
        0,
    ]
    assert (await marks())[a.encode()] == f"{e[a]}|2".encode()
    # b's mark is now another entry's: finishing that entry keeps it; begin b again after.
    await broker.raw(pk.started, lambda r: r.hset(pk.started, b, "0-1|1"))
    assert await broker.step(pk, token, "w1", [Finish("A", e[b], b)], [(e[b], b)], 0) == [0]
    assert (await marks())[b.encode()] == f"{e[b]}|1".encode()
    # Finished, then begun again in the same call: a first run again.
    assert await broker.step(pk, token, "w1", [Finish("A", e[a], a)], [(e[a], a)], 0) == [0]
    assert (await marks())[a.encode()] == f"{e[a]}|1".encode()
    # c cancelled while queued: its begin acks it unrun; d cancelled while running: its
    # finish removes its cancel mark and its start mark.
    assert await broker.step(pk, token, "w1", [], [(e[d_], d_)], 0) == [0]
    for tid in (c, d_):
        assert await broker.cancel(pk, tid, int(time.time() * 1000)) in ("pending", "running")
    assert await broker.step(pk, token, "w1", [Finish("A", e[d_], d_)], [(e[c], c)], 0) == [-1]
    assert await broker.cancelled_ids(pk) == set()
    assert c.encode() not in await marks() and d_.encode() not in await marks()
    # The rest, 1,500 begins and then their 1,500 finishes, one call each.
    rest = [(e[t.id], t.id) for t in tasks[4:]]
    assert await broker.step(pk, token, "w1", [], rest, 0) == [0] * len(rest)
    assert len(await marks()) == 2 + len(rest)
    fins = [Finish("A", en, tid) for en, tid in [(e[a], a), (e[b], b), *rest]]
    assert await broker.step(pk, token, "w1", fins, [], 0) == []
    assert await marks() == {}
    summary = await broker.raw(pk.stream, lambda r: r.xpending(pk.stream, GROUP))
    assert summary["pending"] == 0


async def test_queued_ordered_tasks_run_in_batches_in_per_key_order(
    redis_url: str, pg_dsn: str, broker: Broker, store: RecordStore
) -> None:
    """Ordered tasks read by take.lua and chained in batches (a key's next entry begins
    after its previous one's finish): every task runs once, each key's tasks in
    submission order and never two of a key at once, and the batch path ran them."""
    app = App()
    started: list[tuple[str, int]] = []
    runners: list[str] = []
    running: set[str] = set()
    overlaps: list[str] = []

    @app.task("step")
    async def step(ctx: TaskContext) -> None:
        if ctx.partition_key in running:
            overlaps.append(ctx.partition_key)
        running.add(ctx.partition_key)
        started.append((ctx.partition_key, int(ctx.payload)))
        runners.append(asyncio.current_task().get_name())  # type: ignore[union-attr]
        if int(ctx.payload) % 7 == 3:
            await asyncio.sleep(0.002)  # some suspend: their key's next waits for them
        running.discard(ctx.partition_key)

    settings = make_settings(redis_url, pg_dsn, partitions=2, concurrency=16)
    keys = [f"o{i}" for i in range(40)]
    tasks = [new_task(keys[i % len(keys)], "step", str(i).encode()) for i in range(2000)]
    producer = Producer(broker, settings)
    for lo in range(0, len(tasks), 200):  # one call after another: per-key order is theirs
        await producer.submit_many(tasks[lo : lo + 200], epoch=0)
    ids = [t.id for t in tasks]
    async with running_worker(app, settings):
        await _all_done(broker, store, settings, ids, 60)
    assert overlaps == []
    assert sorted(n for _, n in started) == list(range(len(tasks)))  # each ran once
    for key in keys:
        seq = [n for k, n in started if k == key]
        assert seq == sorted(seq), key
    recs = await store.tasks("id = ANY($1)", ids)
    assert {r.status for r in recs} == {Status.SUCCEEDED}
    # Read and begun by take.lua, and chained heads begun in batches.
    assert any(name.startswith("take ") for name in runners), set(runners)
    assert any(name.startswith("chain ") for name in runners), set(runners)


async def test_a_handler_owns_its_task_timeouts_and_task_groups_work_on_the_batch_path(
    redis_url: str, pg_dsn: str, broker: Broker, store: RecordStore
) -> None:
    """Handlers that rely on their own Task (asyncio.timeout, TaskGroup, current_task)
    behave as in a Task of their own: a timeout cancels the handler, never the partition's
    reader, and the partition goes on reading and running what comes after."""
    app = App()
    owners: list[str] = []

    @app.task("timed", ordered=False)
    async def timed(ctx: TaskContext) -> str:
        owners.append(asyncio.current_task().get_name())  # type: ignore[union-attr]
        try:
            async with asyncio.timeout(0.05):
                await asyncio.sleep(5)
        except TimeoutError:
            return "timed out"
        return "slept"

    @app.task("group")
    async def group(ctx: TaskContext) -> int:
        owners.append(asyncio.current_task().get_name())  # type: ignore[union-attr]
        async with asyncio.TaskGroup() as tg:
            parts = [tg.create_task(asyncio.sleep(0.01, i)) for i in range(3)]
        return sum(p.result() for p in parts)

    @app.task("after", ordered=False)
    async def after(ctx: TaskContext) -> None:
        pass

    settings = make_settings(redis_url, pg_dsn, partitions=1)
    first = [new_task(f"t{i}", "timed") for i in range(20)] + [
        new_task(f"g{i}", "group") for i in range(20)
    ]
    producer = Producer(broker, settings)
    await producer.submit_many(first, epoch=0)
    async with running_worker(app, settings):
        await _all_done(broker, store, settings, [t.id for t in first], 20)
        later = [new_task(f"a{i}", "after") for i in range(50)]
        await producer.submit_many(later, epoch=0)  # the reader still reads
        await _all_done(broker, store, settings, [t.id for t in later], 20)
    recs = {r.id: r for r in await store.tasks("id = ANY($1)", [t.id for t in first])}
    assert {recs[t.id].result for t in first[:20]} == {b"timed out"}
    assert {recs[t.id].result for t in first[20:]} == {b"3"}
    # The batch path ran them, each in a Task of its own.
    assert {name.split()[0] for name in owners} <= {"take", "chain"}, set(owners)
    assert any(name.startswith("take ") for name in owners), set(owners)


async def test_a_handler_raising_cancelled_error_fails_its_attempt_and_its_key_goes_on(
    redis_url: str, pg_dsn: str, broker: Broker, store: RecordStore
) -> None:
    """CancelledError out of a handler the worker did not cancel (it cancelled itself, or
    a library let one out) is a failed attempt, retried like any failure, on the batch
    path and on the per-task path (a sync handler): the entry is not left pending, and
    an ordered key's later tasks still run, in order."""
    app = App()
    runs: list[tuple[str, int]] = []

    @app.task("selfcancel", max_attempts=3, backoff_base_s=0.01, backoff_max_s=0.01)
    async def selfcancel(ctx: TaskContext) -> None:
        runs.append((ctx.partition_key, ctx.attempt))
        if ctx.attempt == 1 and ctx.payload == b"self":
            asyncio.current_task().cancel()  # type: ignore[union-attr]
            await asyncio.sleep(1)
        elif ctx.attempt == 1 and ctx.payload == b"raise":
            raise asyncio.CancelledError()

    @app.task("free", ordered=False, max_attempts=3, backoff_base_s=0.01, backoff_max_s=0.01)
    async def free(ctx: TaskContext) -> None:
        runs.append((ctx.partition_key, ctx.attempt))
        if ctx.attempt == 1:
            raise asyncio.CancelledError()

    @app.task("sync", max_attempts=3, backoff_base_s=0.01, backoff_max_s=0.01)
    def sync(ctx: TaskContext) -> None:
        runs.append((ctx.partition_key, ctx.attempt))
        if ctx.attempt == 1:
            raise asyncio.CancelledError()

    settings = make_settings(redis_url, pg_dsn, partitions=1)
    tasks = [
        new_task("a", "selfcancel", b"self"),
        new_task("a", "selfcancel", b"next"),
        new_task("b", "selfcancel", b"raise"),
        new_task("b", "selfcancel", b"next"),
        new_task("c", "free"),
        new_task("d", "sync"),
        new_task("d", "selfcancel", b"next"),
    ]
    producer = Producer(broker, settings)
    await producer.submit_many(tasks, epoch=0)
    ids = [t.id for t in tasks]
    async with running_worker(app, settings):
        await _all_done(broker, store, settings, ids, 20)
    recs = {r.id: r for r in await store.tasks("id = ANY($1)", ids)}
    assert [(recs[i].status, recs[i].attempts) for i in ids] == [
        (Status.SUCCEEDED, 2),
        (Status.SUCCEEDED, 1),
        (Status.SUCCEEDED, 2),
        (Status.SUCCEEDED, 1),
        (Status.SUCCEEDED, 2),
        (Status.SUCCEEDED, 2),
        (Status.SUCCEEDED, 1),
    ]
    for key in "abd":  # the key's next task ran after the retried one
        assert [a for k, a in runs if k == key] == [1, 2, 1], (key, runs)
    first = await store.attempts(tasks[0].id)
    assert first[0].status == Status.FAILED and "CancelledError" in (first[0].error or "")
