"""`Worker`: one worker process of a region — consumers, loops, records, admin server.

A worker registers in the region, gets partitions from the manager (`Membership`), runs
one `PartitionConsumer` per owned partition, forwards due delayed tasks and trims what
it owns (`Forwarder`, `Trimmer`), records every state change through one `RecordWriter`, and by
default also stands as a manager candidate (`Manager`), so a region needs no extra
process. `run(burst=True)` drains the region and returns — tests end when work ends.

Shutdown: the first SIGTERM (or SIGINT) stops fetching, lets in-flight handlers finish
within `shutdown_grace_s`, records and acks them, and releases the leases so partitions
move at once; a second one stops now, leaving in-flight entries to be redelivered. A
stop-now that has not ended `STOP_NOW_S` later ends the process anyway (exit code 70),
after logging every asyncio Task's stack: an operator's second signal always works, and
what held the shutdown up is in the log. The deadline is never called off: it also
covers the event loop's teardown, which waits for every Task, a handler left running by
an abort (`core.consumer.ABORT_WAIT_S`) among them. After a graceful stop, such a handler
cannot keep the process alive either: once the shutdown has released everything, the
tasks still alive get `ABANDON_WAIT_S` to end, and the process exits without them (70).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import faulthandler
import logging
import os
import random
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NoReturn

from homeport.core.app import App
from homeport.core.broker import Broker
from homeport.core.errors import HomeportError
from homeport.core.forwarder import Forwarder
from homeport.core.keys import RegionKeys
from homeport.core.manager import Manager
from homeport.core.membership import Membership
from homeport.core.metrics import Metrics
from homeport.core.recorder import RecordWriter
from homeport.core.runtime import WorkerRuntime
from homeport.core.settings import Settings
from homeport.core.store import RecordStore
from homeport.core.trimmer import Trimmer
from ulid import ULID

if TYPE_CHECKING:
    from homeport.core.admin import AdminServer

log = logging.getLogger(__name__)
# Seconds a stop-now (the second SIGTERM) may take before the process exits regardless.
STOP_NOW_S = 5.0
STOP_NOW_EXIT = 70  # EX_SOFTWARE: the stop-now did not end by itself
# Seconds tasks still alive after a finished shutdown get to end once cancelled.
ABANDON_WAIT_S = 1.0
_BURST_POLL_S = 0.05
# Unix seconds at which the agent spawned this worker process (`regions.workforce`).
SPAWNED_AT_ENV = "HOMEPORT_SPAWNED_AT"


class Worker:
    """A worker of one region; see the module docstring."""

    def __init__(
        self,
        app: App,
        settings: Settings,
        *,
        with_manager: bool = True,
        worker_id: str | None = None,
        metrics: Metrics | None = None,
        seed: int | None = None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{str(ULID())[-6:]}"
        self.metrics = metrics or Metrics()
        self._with_manager = with_manager
        self._rng = random.Random(seed)
        self._broker = Broker.from_settings(settings)
        self._store: RecordStore | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(
            settings.sync_threads, thread_name_prefix="handler"
        )
        self._stop = asyncio.Event()
        self._stop_now = asyncio.Event()
        self._signals = False
        self._watchdog: asyncio.TimerHandle | None = None
        self._started = False
        self.admin_port = 0
        self.start_s = 0.0  # seconds `start()` took, `prepare()` not counted
        self.start_cpu_s = 0.0  # the CPU seconds of the same
        self.recorder: RecordWriter | None = None
        self.membership: Membership | None = None
        self.manager: Manager | None = None
        self._loops: list[Any] = []
        self._admin: AdminServer | None = None

    async def prepare(self) -> RecordWriter:
        """Connect the record store and start recording: all a worker can do before its
        Redis store is a primary. A parked worker (warm standby) prepares before it waits
        (`wait_for_promotion`), so that after a promotion its first task waits for no
        PostgreSQL handshake (0.4 s with TLS on a loaded host, measured in game days)."""
        if self.recorder is not None:
            return self.recorder
        s = self.settings
        if s.pg_dsn:
            self._store = await RecordStore.connect(s.pg_dsn)
        self.recorder = RecordWriter(
            self._store, self.metrics, s.record_batch_max, s.record_flush_s
        )
        self.recorder.start()
        return self.recorder

    async def start(self) -> None:
        s = self.settings
        started, cpu_started = time.monotonic(), time.process_time()
        await self._broker.connect()
        connected, cpu_connected = time.monotonic(), time.process_time()
        recorder = await self.prepare()
        prepared = time.monotonic() - connected  # 0 for a parked or prepared worker
        cpu_prepared = time.process_time() - cpu_connected
        loop = asyncio.get_running_loop()

        def run_sync(fn: Callable[[], Any]) -> asyncio.Future[Any]:
            return loop.run_in_executor(self._pool, fn)

        rt = WorkerRuntime(
            worker_id=self.worker_id,
            app=self.app,
            broker=self._broker,
            settings=s,
            metrics=self.metrics,
            recorder=recorder,
            run_sync=run_sync,
            rng=self._rng,
        )
        self.membership = Membership(rt, self._stop_now)
        # Saturation = inflight / slots; inflight is read from the runtime at scrape time.
        self.metrics.slots.labels(s.region).set(s.concurrency)
        self.metrics.inflight.labels(s.region).set_function(lambda: rt.inflight)
        self.metrics.fetch_budget.labels(s.region).set(rt.budget)
        self.metrics.fetch_held.labels(s.region).set_function(rt.held_seconds)
        self.metrics.fetch_released.labels(s.region).set_function(lambda: rt.released)
        owned = self._owned
        forwarder = Forwarder(self._broker, s.region, owned, s.forward_interval_s, self.metrics)
        rt.on_delayed = forwarder.notice  # retries this worker schedules (unordered kinds)
        rt.on_acquired = forwarder.wake  # partitions taken over: their due tasks at once
        self._loops = [
            self.membership,
            forwarder,
            Trimmer(self._broker, owned, s.trim_interval_s, s.dedup_window_s, self.metrics),
        ]
        if self._with_manager:
            membership = self.membership
            self.manager = Manager(
                self._broker, s, self.metrics, self.worker_id, self.app,
                on_assignment=membership.wake,
            )  # fmt: skip
            self._loops.insert(0, self.manager)
        # Gateways refuse kinds no worker of the region announced (router/kinds.py).
        await self._broker.announce_kinds(RegionKeys(s.region), self.app.kinds)
        # Register before the first manager step so a fresh region assigns at once.
        await self._broker.heartbeat(
            RegionKeys(s.region), self.worker_id, int(s.lease_ttl_s * 1000)
        )
        for lp in self._loops:
            lp.start()
        if s.admin_port >= 0:
            # Imported here: aiohttp is the largest import of a worker (a third of its
            # start-up on the bench machine) and a worker without admin port needs none.
            from homeport.core.admin import AdminServer

            self._admin = AdminServer(
                self.metrics,
                status=self.status,
                healthy=self._healthy,
                ready=lambda: self._started,
                host=s.admin_host,
                port=s.admin_port,
                targets_dir=s.metrics_targets_dir,
                job="worker",
            )
            self.admin_port = await self._admin.start()
        self._started = True
        # What a booted parked or prepared worker still does here: all but `prepare()`,
        # which it did before its wait (so the figure compares across workers).
        self.start_s = time.monotonic() - started - prepared
        # Its CPU seconds: the same on an idle host, but not inflated by the other
        # processes of a cluster that start at the same time (`capacity.prepared_delay`).
        self.start_cpu_s = time.process_time() - cpu_started - cpu_prepared
        log.info("worker %s started in %.2fs (Redis %.2fs, record store %.2fs)",
                 self.worker_id, self.start_s + prepared, connected - started,
                 prepared)  # fmt: skip

    def record_boot(self, parked_s: float = 0.0) -> float | None:
        """Export the seconds from this process's spawn (`SPAWNED_AT_ENV`, set by the
        agent) until it could serve, less `parked_s` spent waiting for a promotion: the
        start-up an added worker costs a scale-up (`regions.loadmeter`). None (nothing
        exported) for a worker the agent did not start."""
        spawned = os.environ.get(SPAWNED_AT_ENV, "")
        try:
            boot = time.time() - float(spawned) - parked_s
        except ValueError:
            return None
        self.metrics.boot.labels(self.settings.region).set(boot)
        self.metrics.start_time.labels(self.settings.region).set(self.start_s)
        self.metrics.start_cpu.labels(self.settings.region).set(self.start_cpu_s)
        log.info("worker %s booted in %.2fs from its spawn (%.1fs parked not counted)",
                 self.worker_id, boot, parked_s)  # fmt: skip
        return boot

    def _owned(self) -> list[Any]:
        return self.membership.owned if self.membership else []

    def _healthy(self) -> bool:
        return all(lp.running for lp in self._loops)

    def status(self) -> dict[str, Any]:
        m = self.membership
        return {
            "role": "worker",
            "worker_id": self.worker_id,
            "region": self.settings.region,
            "partitions": sorted(m.consumers) if m else [],
            "leader": bool(self.manager and self.manager.is_leader),
            "inflight": m.rt.inflight if m else 0,
            "record_lag_s": self.recorder.lag_s if self.recorder else 0.0,
            "kinds": self.app.kinds,
        }

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def request_stop(self) -> None:
        """First call: graceful stop; second call: stop now."""
        if self._stop.is_set():
            self._stop_now.set()
            if self._signals and self._watchdog is None:
                self._watchdog = asyncio.get_running_loop().call_later(
                    STOP_NOW_S, self._stop_now_overdue
                )
                # If the event loop itself is blocked, the call above never runs.
                faulthandler.dump_traceback_later(STOP_NOW_S + 2, exit=True)
        self._stop.set()

    def _stop_now_overdue(self) -> None:
        tasks = [t for t in asyncio.all_tasks() if not t.done()]
        log.error(
            "worker %s: stop-now still not done after %.0fs; exiting with %d tasks left:",
            self.worker_id,
            STOP_NOW_S,
            len(tasks),
        )
        _exit_naming(tasks)

    async def run(self, *, burst: bool = False, install_signals: bool = False) -> None:
        """Run until stopped (or, with `burst`, until the region is drained)."""
        if not self._started:
            await self.start()
        if install_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.request_stop)
            self._signals = True  # this process is ours to end: a stop-now has a deadline
        if burst:
            while not self._stop.is_set():
                if await self.region_drained():
                    break
                try:
                    await asyncio.wait_for(self._stop.wait(), _BURST_POLL_S)
                except TimeoutError:
                    pass
        else:
            await self._stop.wait()
        await self.shutdown(graceful=not self._stop_now.is_set())
        if self._signals:
            await self._end_abandoned()

    async def _end_abandoned(self) -> None:
        """Once the shutdown has released everything, end this process even if handlers
        an abort left running (`core.consumer.ABORT_WAIT_S`) still ignore their
        cancellation: the event loop's teardown would wait for them forever, after a
        single, graceful SIGTERM too. Their entries are pending for the next owner, as
        after a crash; they are logged, and the exit code is `STOP_NOW_EXIT`."""
        me = asyncio.current_task()
        left = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
        if not left:
            return
        for t in left:
            t.cancel()
        _, stuck = await asyncio.wait(left, timeout=ABANDON_WAIT_S)
        if not stuck:
            return
        log.error(
            "worker %s: stopped, but %d task(s) ignore their cancellation; exiting without "
            "them (their entries stay pending for the next owner):",
            self.worker_id,
            len(stuck),
        )
        _exit_naming(stuck)

    async def region_drained(self) -> bool:
        """True when no partition of the region holds waiting, running or delayed work."""
        if self.membership is None or self.membership.rt.inflight:
            return False
        if self.membership.consumers and any(c.busy for c in self.membership.consumers.values()):
            return False
        rk = RegionKeys(self.settings.region)
        checks = [self._broker.drained(rk.partition(p)) for p in range(self.settings.partitions)]
        return all(await asyncio.gather(*checks))

    async def shutdown(self, *, graceful: bool = True) -> None:
        started = time.monotonic()
        if self.membership is not None:
            self.membership.accepting = False
            await self.membership.stop()
            await self.membership.release_all(graceful=graceful)
        for lp in self._loops:
            if lp is not self.membership:
                await lp.stop()
        if self.manager is not None and self.manager.is_leader:
            try:
                await self.manager.resign()
            except Exception as exc:  # noqa: BLE001 - the lease then simply expires
                log.warning("could not resign leadership: %s", exc)
        if self.recorder is not None:
            await self.recorder.stop()
        if self._admin is not None:
            await self._admin.stop()
        if self._store is not None:
            await self._store.close()
        await self._broker.close()
        self._pool.shutdown(wait=graceful, cancel_futures=True)
        log.info("worker %s stopped in %.2fs", self.worker_id, time.monotonic() - started)


def _exit_naming(tasks: Iterable[asyncio.Task[Any]]) -> NoReturn:
    """Log each Task with its await chain, then end the process now (`STOP_NOW_EXIT`):
    what a crash leaves, unacked entries, is redelivered to the next owner."""
    for t in tasks:
        log.error("task %s:\n%s", t.get_name(), _await_chain(t) or "  (not started)")
    logging.shutdown()
    os._exit(STOP_NOW_EXIT)


def _await_chain(task: asyncio.Task[Any]) -> str:
    """Where a suspended Task waits: each coroutine of its await chain, outermost first
    (`Task.get_stack` gives only the outermost frame of a suspended coroutine)."""
    lines = []
    obj: Any = task.get_coro()
    while obj is not None:
        frame = getattr(obj, "cr_frame", None) or getattr(obj, "gi_frame", None)
        if frame is not None:
            code = frame.f_code
            lines.append(f"  {code.co_filename}:{frame.f_lineno} in {code.co_name}")
        obj = getattr(obj, "cr_await", None) or getattr(obj, "gi_yieldfrom", None)
    return "\n".join(lines)


async def wait_for_go() -> float | None:
    """A reserve (`homeport worker --reserve`): block, booted and connected but holding
    nothing, until the line `go` arrives on stdin (the agent's scale order,
    `regions.workforce`). Returns the seconds waited, or None at the end of stdin."""
    started = time.monotonic()
    import homeport.core.admin  # noqa: F401  (warm: see wait_for_promotion)

    log.info("reserve: booted, waiting for the agent's go")
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            log.info("reserve: stdin closed without a go: exiting")
            return None
        if line.strip() == "go":
            break
    waited = time.monotonic() - started
    log.info("reserve: go after %.1fs: starting", waited)
    return waited


async def wait_for_promotion(settings: Settings, epoch: int, poll_s: float = 1.0) -> float:
    """Return once the region store is a primary whose partitions carry `epoch` or later:
    a parked (warm standby) worker on a mirror starts the moment a failover promotes it,
    and not when a failback merely passes through. Returns the seconds waited.

    It looks again whenever a fence announces an epoch on the region's channel
    (`regions.stores.fence` publishes it once the promoted copy carries the epoch), and
    every `poll_s` in case that notice was lost. It polled every 50 ms before: a standby
    region's parked and reserve workers then cost a game day's host a sixth of a core."""
    started = time.monotonic()
    # Warm means imported too: the admin server's aiohttp is the largest import of a
    # worker, and importing it after the promotion would block the first steps.
    import homeport.core.admin  # noqa: F401

    broker = Broker.from_settings(settings)
    rk = RegionKeys(settings.region)
    pk = rk.partition(0)
    log.info("parked: waiting for %s to be promoted at epoch >= %d", settings.redis_url, epoch)

    async def promoted() -> bool:
        return await broker.role() == "master" and await broker.get_epoch(pk) >= epoch

    connected = False
    try:
        while True:
            try:
                if not connected:  # a Redis Cluster's slot map is learnt here
                    await broker.connect()
                    connected = True
                # Subscribed before the first look; at this worker's own node, which
                # hears a cluster's publishes too and outlives the master it mirrors.
                async with broker.subscribed(rk.fenced, at_seed=True) as fences:
                    while not await promoted():
                        await fences.next(poll_s)
                break
            except HomeportError:
                # The mirror restarts or is unreachable: keep waiting, quietly.
                await asyncio.sleep(poll_s)
    finally:
        await broker.close()
    waited = time.monotonic() - started
    log.info("promoted after %.1fs parked: starting", waited)
    return waited
