"""Partition ownership: fencing tokens, rebalancing, shutdown and the admin server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner
from homeport.core.app import App, TaskContext
from homeport.core.broker import Broker, Finish
from homeport.core.cli import db
from homeport.core.consumer import ABORT_WAIT_S
from homeport.core.errors import Fenced
from homeport.core.keys import GROUP, RegionKeys
from homeport.core.partitioner import partition_of
from homeport.core.producer import Producer
from homeport.core.settings import Settings
from homeport.core.store import RecordStore, Status
from homeport.core.task import new_task
from homeport.core.worker import ABANDON_WAIT_S, STOP_NOW_EXIT, STOP_NOW_S

from tests.conftest import running_worker, wait_for

from .conftest import REGION, make_settings
from .procs import WorkerProcess, read_exec_log


async def test_stale_lease_token_cannot_ack_or_begin(redis_url: str, broker: Broker) -> None:
    settings = make_settings(redis_url)
    pk = RegionKeys(REGION).partition(0)
    await broker.ensure_group(pk)
    res = await Producer(broker, settings).submit(new_task("k", "noop"), epoch=0)
    p = RegionKeys(REGION).partition(res.partition)
    await broker.ensure_group(p)
    old = await broker.acquire(p.lease, p.fence, "old-owner", 60_000)
    [d] = await broker.read_new(p, "old-owner", 10, 0)
    await broker.raw(p.lease, lambda c: c.delete(p.lease))  # the old lease expired
    new = await broker.acquire(p.lease, p.fence, "new-owner", 60_000)
    assert new > old

    for finishes, begins in (
        ([Finish("A", d.entry_id, d.task_id)], []),
        ([], [(d.entry_id, d.task_id)]),
    ):
        try:
            await broker.step(p, old, "old-owner", finishes, begins, 0)
        except Fenced as exc:
            assert exc.current_epoch == new
        else:
            raise AssertionError("a stale token was accepted")
    summary = await broker.raw(p.stream, lambda c: c.xpending(p.stream, GROUP))
    assert summary["pending"] == 1, "the stale owner's ack must not land"
    assert await broker.step(p, new, "new-owner", [Finish("A", d.entry_id, d.task_id)], [], 0) == []
    summary = await broker.raw(p.stream, lambda c: c.xpending(p.stream, GROUP))
    assert summary["pending"] == 0


async def test_partitions_rebalance_when_a_worker_joins_and_move_when_it_leaves(
    redis_url: str, broker: Broker
) -> None:
    app = App()
    ran: list[str] = []

    @app.task("noop")
    async def noop(ctx: TaskContext) -> None:
        ran.append(ctx.partition_key)

    settings = make_settings(redis_url)
    producer = Producer(broker, settings)
    async with running_worker(app, settings) as first:
        second_settings = make_settings(redis_url)
        async with running_worker_partial(app, second_settings) as second:

            async def split() -> bool:
                a = len(first.membership.consumers)  # type: ignore[union-attr]
                b = len(second.membership.consumers)  # type: ignore[union-attr]
                return (a, b) == (4, 4)

            await wait_for(split, 15, "8 partitions split 4/4 over two workers")
            tasks = [new_task(f"k{i}", "noop") for i in range(200)]
            await producer.submit_many(tasks, epoch=0)
            await wait_for(lambda: _len_at_least(ran, 200), 15, "200 tasks over two workers")

        async def all_back() -> bool:
            return len(first.membership.consumers) == 8  # type: ignore[union-attr]

        started = time.monotonic()
        await wait_for(all_back, 15, "the leaver's partitions to move back")
        # The leaver released its leases on shutdown, so the move needs no lease expiry.
        assert time.monotonic() - started < settings.lease_ttl_s + 1.0


async def _len_at_least(items: list[str], n: int) -> bool:
    return len(items) >= n


class running_worker_partial:  # noqa: N801 - reads like the context manager it wraps
    """Like `running_worker`, but does not wait to own every partition."""

    def __init__(self, app: App, settings: Settings) -> None:
        from homeport.core.worker import Worker

        self.worker = Worker(app, settings)
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self):  # type: ignore[no-untyped-def]
        await self.worker.start()
        self.task = asyncio.create_task(self.worker.run())
        return self.worker

    async def __aexit__(self, *exc: object) -> None:
        self.worker.request_stop()
        assert self.task is not None
        await asyncio.wait_for(self.task, 30)


async def _two_sigterms(
    tmp_path: Path,
    redis_url: str,
    pg_dsn: str,
    broker: Broker,
    kind: str,
    payload: bytes,
    *,
    grace_s: int = 30,
    second: bool = True,
) -> tuple[WorkerProcess, str, int | None, float]:
    """Start a worker (`grace_s` of grace), run one task of `kind` on it, send SIGTERM,
    check the worker still waits for the task 0.2 s later, send SIGTERM again (unless not
    `second`): the worker, the task's id, its exit code (None if still running STOP_NOW_S
    + 10 s later) and the seconds from the last signal to the exit. The worker is never
    left running."""
    exec_log = tmp_path / "exec.log"
    w = WorkerProcess(
        tmp_path, "w0", redis_url, pg_dsn, exec_log, extra=("--shutdown-grace-s", str(grace_s))
    )
    try:
        await w.wait_started()
        producer = Producer(broker, Settings(region=REGION, partitions=16, redis_url=redis_url))
        task = new_task("k", kind, payload)
        await producer.submit(task, epoch=0)

        async def running() -> bool:
            return len(read_exec_log(exec_log)) == 1

        await wait_for(running, 20, f"the {kind} task to start")
        w.proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.2)  # the first SIGTERM alone would wait up to 30 s of grace
        assert w.proc.poll() is None, "the first SIGTERM must wait for the running task"
        started = time.monotonic()
        if second:
            w.proc.send_signal(signal.SIGTERM)
        try:
            code: int | None = await asyncio.to_thread(w.proc.wait, STOP_NOW_S + 10)
        except subprocess.TimeoutExpired:
            code = None
        return w, task.id, code, time.monotonic() - started
    finally:
        w.kill()


async def _pending(broker: Broker) -> int:
    """Entries pending (read, not acked) over the region's 16 partitions."""
    rk = RegionKeys(REGION)
    pending = 0
    for p in range(16):
        pk = rk.partition(p)
        pending += (await broker.raw(pk.stream, lambda c, s=pk.stream: c.xpending(s, GROUP)))[
            "pending"
        ]
    return pending


async def test_second_sigterm_stops_now_and_the_task_is_redelivered(
    redis_url: str, pg_dsn: str, store: RecordStore, broker: Broker, tmp_path: Path
) -> None:
    w, task_id, code, took = await _two_sigterms(
        tmp_path, redis_url, pg_dsn, broker, "sleepy", b"20"
    )
    assert code == 0 and took < STOP_NOW_S, (code, took, w.log())
    rec = await store.get_task(task_id)
    assert rec.status == Status.RUNNING
    assert await _pending(broker) == 1  # unacked, the entry waits for the next owner


async def test_a_stop_now_a_handler_holds_up_ends_the_process_after_the_shutdown(
    redis_url: str, pg_dsn: str, store: RecordStore, broker: Broker, tmp_path: Path
) -> None:
    """A handler that swallows its cancellation cannot keep a worker alive after a second
    SIGTERM: the abort leaves it running after ABORT_WAIT_S, the shutdown ends, and
    ABANDON_WAIT_S later the process exits (70), naming it; the entry stays pending for
    the next owner."""
    w, _, code, took = await _two_sigterms(tmp_path, redis_url, pg_dsn, broker, "stubborn", b"60")
    assert code == STOP_NOW_EXIT, (code, w.log())
    assert took < ABORT_WAIT_S + ABANDON_WAIT_S + 3, took
    log = w.log()
    assert "ignored their cancellation" in log and "stopped in" in log, log
    assert "ignore their cancellation; exiting without them" in log and "in stubborn" in log
    assert await _pending(broker) == 1


async def test_a_stop_now_whose_shutdown_is_held_up_ends_at_its_deadline(
    redis_url: str, pg_dsn: str, broker: Broker, tmp_path: Path
) -> None:
    """The database has no schema (no `store` fixture): every record write fails and
    the record writer retries, so the shutdown's final flush never ends. STOP_NOW_S
    after the second SIGTERM the process exits (70) anyway, logging the Tasks still
    alive, the record writer among them; the entry stays pending for the next owner."""
    w, _, code, took = await _two_sigterms(tmp_path, redis_url, pg_dsn, broker, "sleepy", b"60")
    assert code == STOP_NOW_EXIT, (code, w.log())
    assert STOP_NOW_S - 0.5 < took < STOP_NOW_S + 5, took
    log = w.log()
    assert "stop-now still not done" in log and "task record-writer" in log, log
    assert "stopped in" not in log, log  # the shutdown itself did not end
    assert await _pending(broker) == 1


async def test_a_handler_ignoring_its_cancellation_does_not_keep_a_gracefully_stopped_worker(
    redis_url: str, pg_dsn: str, store: RecordStore, broker: Broker, tmp_path: Path
) -> None:
    """One SIGTERM, 1 s of grace, a handler that swallows its cancellation: the drain
    ends at the grace, the abort leaves the handler running, the shutdown ends, and the
    process exits (70) ABANDON_WAIT_S later, naming the handler, instead of waiting for
    it in the event loop's teardown; the entry stays pending for the next owner."""
    w, _, code, took = await _two_sigterms(
        tmp_path, redis_url, pg_dsn, broker, "stubborn", b"60", grace_s=1, second=False
    )
    assert code == STOP_NOW_EXIT, (code, w.log())
    assert took < 1 + ABORT_WAIT_S + ABANDON_WAIT_S + 5, took
    log = w.log()
    assert "ignored their cancellation" in log and "stopped in" in log, log
    assert "ignore their cancellation; exiting without them" in log and "in stubborn" in log
    assert "stop-now" not in log, log  # no second signal: the graceful path ended it
    assert await _pending(broker) == 1


async def test_a_handler_ignoring_its_cancellation_does_not_hold_up_a_lost_lease(
    redis_url: str,
    pg_dsn: str,
    broker: Broker,
    store: RecordStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A lost lease aborts its partition in the membership loop. A handler that swallows
    its cancellation is left running after ABORT_WAIT_S (and logged), and the loop goes
    on: the worker takes the partition back once the other holder's lease ends, while
    that handler still runs (it waited for the handler before, renewing nothing)."""
    app = App()
    started: list[int] = []
    release = asyncio.Event()  # ends the stubborn handlers at the test's end

    @app.task("stubborn")
    async def stubborn(ctx: TaskContext) -> None:
        started.append(ctx.deliveries)
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await release.wait()

    settings = make_settings(redis_url, pg_dsn)
    p = partition_of("k", settings.partitions)
    pk = RegionKeys(REGION).partition(p)
    async with running_worker(app, settings) as w:
        assert w.membership is not None
        await Producer(broker, settings).submit(new_task("k", "stubborn"), epoch=0)
        await wait_for(lambda: len(started) == 1, 10, "the stubborn handler to start")
        old = w.membership.consumers[p]
        await broker.raw(pk.lease, lambda c: c.delete(pk.lease))  # as if it expired
        assert await broker.acquire(pk.lease, pk.fence, "thief", 500) > old.token
        lost = time.monotonic()

        def back() -> bool:
            assert w.membership is not None
            c = w.membership.consumers.get(p)
            return c is not None and c is not old

        await wait_for(back, 5, "the partition back while its old handler still runs")
        assert time.monotonic() - lost < ABORT_WAIT_S + 3
        assert not release.is_set()
        await wait_for(lambda: len(started) == 2, 10, "the entry redelivered to the new owner")
        release.set()
    assert "ignored their cancellation" in caplog.text, caplog.text


async def test_admin_server_serves_metrics_health_and_status(
    redis_url: str, broker: Broker
) -> None:
    app = App()

    @app.task("noop")
    async def noop(ctx: TaskContext) -> None:
        pass

    settings = make_settings(redis_url, admin_port=0)
    async with running_worker(app, settings) as w:
        await Producer(broker, settings).submit(new_task("k", "noop"), epoch=0)
        await wait_for(
            lambda: _metric_at_least(w.admin_port, "homeport_succeeded_total", 1),
            10,
            "the task to be counted in /metrics",
        )
        base = f"http://127.0.0.1:{w.admin_port}"
        for path in ("/healthz", "/readyz"):
            assert (await _get(base + path))[0] == 200
        status = json.loads((await _get(base + "/v1/status"))[1])
        assert status["role"] == "worker" and status["region"] == REGION
        assert status["partitions"] == list(range(settings.partitions))
        body = (await _get(base + "/metrics"))[1]
        assert (
            'homeport_end_to_end_latency_seconds_bucket{le="0.005",partition=' in body
            or "homeport_end_to_end_latency_seconds_bucket" in body
        )


async def _get(url: str) -> tuple[int, str]:
    def fetch() -> tuple[int, str]:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()

    return await asyncio.to_thread(fetch)


async def _metric_at_least(port: int, name: str, n: float) -> bool:
    body = (await _get(f"http://127.0.0.1:{port}/metrics"))[1]
    total = sum(
        float(line.rsplit(" ", 1)[1]) for line in body.splitlines() if line.startswith(name + "{")
    )
    return total >= n


def test_db_migrate_command_applies_then_is_up_to_date(pg_dsn: str) -> None:
    runner = CliRunner()
    first = runner.invoke(db, ["migrate", "--pg-dsn", pg_dsn])
    assert first.exit_code == 0, first.output
    assert "applied: 001_tasks_attempts" in first.output
    again = runner.invoke(db, ["migrate", "--pg-dsn", pg_dsn])
    assert again.exit_code == 0 and "up to date" in again.output


async def test_task_past_its_deadline_is_dead_lettered_not_run(
    redis_url: str, pg_dsn: str, broker: Broker, store: RecordStore
) -> None:
    app = App()
    ran: list[str] = []
    gate = asyncio.Event()

    @app.task("step")
    async def step(ctx: TaskContext) -> None:
        ran.append(ctx.task_id)
        if ctx.payload == b"block":
            await gate.wait()

    settings = make_settings(redis_url, pg_dsn)
    blocker = new_task("k", "step", b"block")
    late = new_task("k", "step", deadline=time.time() + 0.3)
    async with running_worker(app, settings):
        await Producer(broker, settings).submit_many([blocker, late], epoch=0)
        await wait_for(lambda: _len_at_least(ran, 1), 10, "the blocking task to start")
        await asyncio.sleep(0.4)  # let the deadline pass while its key is blocked
        gate.set()

        async def dead() -> bool:
            return bool(await store.tasks("id = $1 AND status = 'dead'", late.id))

        await wait_for(dead, 10, "the late task to be dead-lettered")
    assert ran == [blocker.id]
    assert "deadline passed" in ((await store.get_task(late.id)).error or "")


async def test_a_handed_over_partition_is_taken_the_moment_its_old_owner_lets_go(
    redis_url: str, broker: Broker
) -> None:
    """A joining worker takes each partition moved to it within a fraction of a heartbeat
    of the old owner's release, not at its next heartbeat (core.membership). Heartbeats of
    2 s here: taken at the next one, the waits would spread over 0-2 s."""
    app = App()
    release = asyncio.Event()

    @app.task("hold")
    async def hold(ctx: TaskContext) -> None:
        await release.wait()

    settings = make_settings(redis_url, heartbeat_s=2.0, lease_ttl_s=6.0)
    rk = RegionKeys(REGION)
    async with running_worker(app, settings) as first:
        # A task in flight on every partition: each hand-over waits for its handler.
        keys: dict[int, str] = {}
        i = 0
        while len(keys) < settings.partitions:
            keys.setdefault(partition_of(f"k{i}", settings.partitions), f"k{i}")
            i += 1
        await Producer(broker, settings).submit_many(
            [new_task(k, "hold") for k in keys.values()], epoch=0
        )

        async def all_running() -> bool:
            return first.membership is not None and first.membership.rt.inflight == len(keys)

        await wait_for(all_running, 10, "a running task on every partition")
        joiner = make_settings(redis_url, heartbeat_s=2.0, lease_ttl_s=6.0)
        async with running_worker_partial(app, joiner) as second:

            async def moved() -> bool:
                got = await broker.assignment(rk)
                return sum(1 for w in got.values() if w == second.worker_id) == 4

            await wait_for(moved, 15, "the manager to move 4 partitions to the joiner")
            mine = [p for p, w in (await broker.assignment(rk)).items() if w == second.worker_id]

            async def beat() -> float | None:
                got = await broker.raw(rk.workers, lambda c: c.zscore(rk.workers, second.worker_id))
                return None if got is None else float(got)

            # Let go 0.3 s after one of the joiner's steps that found the leases held (a
            # step heartbeats first): taken at its next heartbeat, that would be 1.7 s.
            seen = await beat()

            async def stepped() -> bool:
                return await beat() != seen

            await wait_for(stepped, 10, "a step of the joiner after the move")
            await asyncio.sleep(0.3)
            released: dict[int, float] = {}
            taken: dict[int, float] = {}
            release.set()  # the handlers end; the old owner drains, acks and lets go
            deadline = time.monotonic() + 10
            while len(taken) < len(mine):
                assert time.monotonic() < deadline, f"taken {sorted(taken)} of {mine}"
                now = time.monotonic()
                for p in mine:
                    lease = rk.partition(p).lease
                    owner = await broker.raw(lease, lambda c, k=lease: c.hget(k, "owner"))
                    if owner is None or owner.decode() != first.worker_id:
                        released.setdefault(p, now)
                    if p in second.membership.consumers:  # type: ignore[union-attr]
                        taken.setdefault(p, now)
                await asyncio.sleep(0.005)
            waits = {p: taken[p] - released.get(p, taken[p]) for p in mine}
            assert max(waits.values()) < 0.5, f"seconds from release to take-over: {waits}"
