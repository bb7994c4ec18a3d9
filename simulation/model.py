"""The SimPy model of homeport: regions, partitions, per-key order, workers, retries and
region failover.

Why callbacks and not one SimPy process per task: a process costs a generator, an
`Initialize` event and a resume per yield, which put a million tasks at well over a
minute. Every task here is two SimPy timeouts (its arrival and its service) with plain
callbacks, still scheduled and ordered by SimPy's event queue, so the simulated clock,
ties and determinism are SimPy's. Nothing is aggregated: each task is simulated
individually, so per-key effects are exact.

Terms:
- *held key*: a key whose earlier task has arrived and not yet finished (or been
  dead-lettered); later tasks of that key wait behind it in arrival order, off the
  worker queues, exactly as design §3.3 requires.
- *ready task*: its key is not held by an earlier task; it waits only for a slot of the
  worker that owns its partition, in arrival order.
- *parked task*: ready, but its partition's serving region is down and not yet replaced.
"""

from __future__ import annotations

import heapq
import random
import time
from array import array
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import simpy
from homeport.simulation.distributions import BlockSampler
from homeport.simulation.keys import KeySampler, partition_table
from homeport.simulation.params import ModelParams, RegionSpec
from homeport.simulation.results import RunRecord

_Arrival = tuple[int, Iterator[tuple[float, int, float]], int, float]


@dataclass(slots=True, eq=False)  # eq=False: tasks sit in sets by identity
class _Task:
    seq: int
    arrival: float
    key: int
    home: int
    partition: int
    service: float
    attempt: int = field(default=1, init=False)
    start: float = field(default=-1.0, init=False)


class _Worker:
    """One worker process: `free` slots, its ready queue, and what it is running.

    The ready queue is a heap on (round, seq): with `service_order: partitions` a task's
    round is one after its partition's last queued one (and not before the round being
    served), so each round starts one task of every waiting partition; with `fifo` the
    round is always 0 and the seq (arrival order) decides.
    """

    __slots__ = ("free", "ready", "running", "alive", "round", "rounds")

    def __init__(self, concurrency: int) -> None:
        self.free = concurrency
        self.ready: list[tuple[int, int, _Task]] = []
        self.running: set[_Task] = set()
        self.alive = True
        self.round = 0  # the round being served
        self.rounds: dict[tuple[int, int], int] = {}  # (home, partition) -> its last round

    def queue(self, task: _Task, round_robin: bool) -> None:
        turn = 0
        if round_robin:
            part = (task.home, task.partition)
            turn = max(self.round, self.rounds.get(part, -1) + 1)
            self.rounds[part] = turn
        heapq.heappush(self.ready, (turn, task.seq, task))

    def next_ready(self) -> _Task:
        self.round, _, task = heapq.heappop(self.ready)
        return task


class Simulation:
    """One run of the model. Build it, call `run()` once, read the `RunRecord`.

    All randomness comes from `numpy` generators and a `random.Random` spawned from
    `params.seed`, and the clock is SimPy's simulated clock, so equal parameters give
    identical records.
    """

    def __init__(self, params: ModelParams) -> None:
        self.params = params
        self.env = simpy.Environment()
        streams = np.random.SeedSequence(params.seed).spawn(2 * len(params.regions) + 1)
        self._rngs = [np.random.Generator(np.random.PCG64(s)) for s in streams]
        self._coin = random.Random(params.seed)
        self._service = BlockSampler(params.service_time, self._rngs[-1])
        self._regions = params.regions
        self._index = {r.name: i for i, r in enumerate(params.regions)}
        self._workers = [[_Worker(r.concurrency) for _ in range(r.workers)] for r in self._regions]
        # route[home][partition] -> worker serving it, or None while its region is down
        self._route: list[list[_Worker | None]] = [
            [ws[r.owner(p)] for p in range(r.partitions)]
            for r, ws in zip(self._regions, self._workers, strict=True)
        ]
        self._parked: list[list[_Task]] = [[] for _ in self._regions]
        self._partition_of = [partition_table(params.keys, r.partitions) for r in self._regions]
        self._held: dict[tuple[int, int], deque[_Task] | None] = {}
        self._seq = 0
        self._cap = params.run_tasks
        self._outstanding = 0
        self._live_streams = len(params.regions)
        self._waiting = [0] * len(self._regions)
        self.record = RunRecord(region_names=tuple(r.name for r in self._regions))
        self._arrival_t = array("d")
        self._start_t = array("d")
        self._finish_t = array("d")
        self._home = array("i")
        self._key = array("q")
        self._dead = array("b")

    # ---- arrivals -------------------------------------------------------------------

    def _arrival_stream(self, home: int, region: RegionSpec) -> Iterator[tuple[float, int, float]]:
        horizon = self.params.duration_s if self.params.duration_s is not None else float("inf")
        times_rng, keys_rng = self._rngs[2 * home], self._rngs[2 * home + 1]
        keys = KeySampler(self.params.keys, keys_rng)
        for block in region.arrivals.times(times_rng, horizon):
            services = self.params.service_time.sample(keys_rng, len(block)).tolist()
            yield from zip(block.tolist(), keys.draw(len(block)).tolist(), services, strict=True)

    def _schedule_next_arrival(self, home: int, stream: Iterator[tuple[float, int, float]]) -> None:
        if self._cap is not None and self._seq >= self._cap:
            self._live_streams -= 1
            return
        item = next(stream, None)
        if item is None:
            self._live_streams -= 1
            return
        at, key, service = item
        event = self.env.timeout(max(0.0, at - self.env.now), value=(home, stream, key, service))
        event.callbacks.append(self._on_arrival)

    def _on_arrival(self, event: simpy.Event) -> None:
        home, stream, key, service = cast(_Arrival, event.value)
        if self._cap is None or self._seq < self._cap:
            partition = int(self._partition_of[home][key])
            task = _Task(self._seq, self.env.now, key, home, partition, service)
            self._seq += 1
            self._outstanding += 1
            self._waiting[home] += 1
            held_key = (home, key)
            if held_key in self._held:
                successors = self._held[held_key]
                if successors is None:
                    successors = self._held[held_key] = deque()
                successors.append(task)
            else:
                self._held[held_key] = None
                self._make_ready(task)
        self._schedule_next_arrival(home, stream)

    # ---- dispatch -------------------------------------------------------------------

    def _make_ready(self, task: _Task) -> None:
        worker = self._route[task.home][task.partition]
        if worker is None:
            self._parked[task.home].append(task)
        elif worker.free > 0:
            self._start(worker, task)
        else:
            worker.queue(task, self.params.service_order == "partitions")

    def _start(self, worker: _Worker, task: _Task) -> None:
        now = self.env.now
        worker.free -= 1
        worker.running.add(task)
        if task.start < 0:
            task.start = now
            self._waiting[task.home] -= 1
        event = self.env.timeout(task.service, value=(worker, task))
        event.callbacks.append(self._on_done)

    def _on_done(self, event: simpy.Event) -> None:
        worker, task = cast(tuple[_Worker, _Task], event.value)
        if task not in worker.running:
            return  # lost with its region; it was handed to the standby and runs again
        worker.running.remove(task)
        worker.free += 1
        if worker.ready:
            self._start(worker, worker.next_ready())
        retries = self.params.retries
        if retries.failure_probability and self._coin.random() < retries.failure_probability:
            if task.attempt < retries.max_attempts:
                self._retry_later(task)
                return
            self._finish(task, dead=True)
            return
        self._finish(task, dead=False)

    def _retry_later(self, task: _Task) -> None:
        retries = self.params.retries
        backoff = min(retries.backoff_cap_s, retries.backoff_base_s * 2 ** (task.attempt - 1))
        task.attempt += 1
        task.service = self._service.next()
        self.record.retries += 1
        # "equal jitter": half fixed, half random, so retries of a burst spread out
        event = self.env.timeout(backoff * (0.5 + 0.5 * self._coin.random()), value=task)
        event.callbacks.append(lambda ev: self._make_ready(ev.value))

    def _finish(self, task: _Task, *, dead: bool) -> None:
        self._outstanding -= 1
        self._arrival_t.append(task.arrival)
        self._start_t.append(task.start)
        self._finish_t.append(self.env.now)
        self._home.append(task.home)
        self._key.append(task.key)
        self._dead.append(dead)
        held_key = (task.home, task.key)
        successors = self._held[held_key]
        if successors:
            self._make_ready(successors.popleft())
        else:
            del self._held[held_key]

    # ---- failover -------------------------------------------------------------------

    def _on_outage(self, event: simpy.Event) -> None:
        down = self._index[cast(str, event.value)]
        lost: list[_Task] = []
        for worker in self._workers[down]:
            worker.alive = False
            self.record.duplicates += len(worker.running)
            lost.extend(worker.running)
            lost.extend(task for _, _, task in worker.ready)
            worker.running = set()
            worker.ready = []
        for home, routes in enumerate(self._route):
            if any(w is not None and not w.alive for w in routes):
                self._route[home] = [None] * len(routes)
        for task in lost:
            self._parked[task.home].append(task)
        self.record.outage_at = self.env.now

    def _on_promotion(self, event: simpy.Event) -> None:
        down = self._index[cast(str, event.value)]
        standby_name = self._regions[down].standby
        if standby_name is None:
            return
        standby = self._index[standby_name]
        workers = [w for w in self._workers[standby] if w.alive]
        offset = self._regions[standby].partitions
        self._route[down] = [
            workers[(offset + p) % len(workers)] for p in range(self._regions[down].partitions)
        ]
        backlog = sorted(self._parked[down], key=lambda t: t.seq)
        self._parked[down] = []
        self.record.promoted_at = self.env.now
        self.record.backlog_at_promotion = sum(self._waiting[h] for h in (down, standby))
        for task in backlog:
            self._make_ready(task)

    # ---- sampling and the run -------------------------------------------------------

    def _on_sample(self, event: simpy.Event) -> None:
        self.record.sample_t.append(self.env.now)
        self.record.sample_waiting.append(tuple(self._waiting))
        if self._outstanding or self._live_streams:
            interval = self.params.sample_interval_s or 1.0
            self.env.timeout(interval).callbacks.append(self._on_sample)

    def run(self) -> RunRecord:
        wall = time.perf_counter()
        for home, region in enumerate(self._regions):
            self._schedule_next_arrival(home, self._arrival_stream(home, region))
        failover = self.params.failover
        if failover is not None:
            self.env.timeout(failover.at_s, value=failover.region).callbacks.append(self._on_outage)
            promote_at = failover.at_s + failover.promotion_delay_s
            self.env.timeout(promote_at, value=failover.region).callbacks.append(self._on_promotion)
        if self.params.sample_interval_s is not None:
            self.env.timeout(0).callbacks.append(self._on_sample)
        self.env.run()
        self.record.wall_s = time.perf_counter() - wall
        self.record.arrival = np.frombuffer(self._arrival_t, dtype=np.float64)
        self.record.start = np.frombuffer(self._start_t, dtype=np.float64)
        self.record.finish = np.frombuffer(self._finish_t, dtype=np.float64)
        self.record.home = np.frombuffer(self._home, dtype=np.int32)
        self.record.key = np.frombuffer(self._key, dtype=np.int64)
        self.record.dead = np.frombuffer(self._dead, dtype=np.int8).astype(bool)
        self.record.end_s = self.env.now
        self.record.arrived = self._seq
        return self.record


def simulate(params: ModelParams) -> RunRecord:
    """Run the model once with `params` (its `seed` included) and return the record."""
    return Simulation(params).run()
