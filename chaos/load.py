"""The game day's load: submits through the real SDK at a fixed rate, recorded as ops.

The arrival sequence (which key, which durability, which id) comes from
`random.Random(seed)` alone. Submits of one key go one at a time, in arrival order (the
next is sent once the previous is acknowledged or has failed for good), so the checker
knows the order each key's tasks must run in. Each submit retries with the SDK's bounded
policy and its own per-attempt timeout; the op records the final outcome.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import random
import time
from collections.abc import Callable

from homeport.chaos.errors import RunError
from homeport.chaos.history import Op
from homeport.chaos.scenario import Load
from homeport.regions.control import ControlPlane
from homeport.regions.placement import home_region
from homeport.regions.topology import Topology
from homeport.router.client import AsyncClient, RetryPolicy
from homeport.router.errors import GatewayError
from homeport.router.etcd_routing import EtcdRoutingTable

Clock = Callable[[], float]
WARM_UP_S = 60.0  # bound on the warm-up: probes of every home acknowledged and run
WARM_UP_ROUNDS = 3  # rounds of probes (one per home and durability) before the load


class SdkRoutes(EtcdRoutingTable):
    """The SDK's own etcd routing table (`router.etcd_routing`), with a bounded refresh.

    The SDK refreshes the table when a gateway is unavailable. During a game day etcd may
    be what is broken (a lost member, an isolated region); a refresh that hangs or raises
    would then end the submit with a control-plane error instead of the gateway's answer.
    Here it is bounded by `REFRESH_S` and a failure keeps the cached routes (as a client
    must), counted in `refresh_failures`."""

    REFRESH_S = 1.0
    refresh_failures = 0

    @classmethod
    async def open(cls, topology: Topology) -> SdkRoutes:
        cp = await ControlPlane.open(topology, "client")
        return cls(topology, cp, await cp.routing.load())

    async def refresh(self) -> None:
        try:
            await asyncio.wait_for(super().refresh(), self.REFRESH_S)
        except Exception:  # noqa: BLE001 - keep the cached routes; the retry goes on
            self.refresh_failures += 1


def _key_picker(load: Load, rng: random.Random) -> Callable[[], int]:
    if load.distribution == "uniform":
        return lambda: rng.randrange(load.keys)
    weights = [1 / (k + 1) ** load.zipf_s for k in range(load.keys)]
    cumulative = list(itertools.accumulate(weights))
    return lambda: min(bisect.bisect(cumulative, rng.random() * cumulative[-1]), load.keys - 1)


def arrivals(load: Load, seed: int, run: str) -> list[tuple[float, str, str, str]]:
    """(offset seconds, task id, key, durability) of every submit, in order."""
    rng = random.Random(f"load:{seed}")
    pick = _key_picker(load, rng)
    levels = list(load.durability)
    weights = [load.durability[d] for d in levels]
    count = int(load.rate * load.duration_s)
    return [
        (i / load.rate, f"{run}-{i}", f"k{pick()}", rng.choices(levels, weights)[0])
        for i in range(count)
    ]


class LoadGenerator:
    def __init__(
        self,
        topology: Topology,
        load: Load,
        seed: int,
        run: str,
        ops: list[Op],
        routes: EtcdRoutingTable,
        clock: Clock = time.time,
    ) -> None:
        self.topology = topology
        self.load = load
        self.plan = arrivals(load, seed, run)
        self.run_id = run
        self.ops = ops
        self.clock = clock
        self.routes = routes
        self.client = AsyncClient(
            routes,
            timeout=load.timeout_s,
            retry=RetryPolicy(attempts=load.attempts),
            rng=random.Random(seed),
        )
        self._locks: dict[str, asyncio.Lock] = {}
        self.stopped = False

    async def warm_up(self) -> tuple[int, float]:
        """Reach the steady state before the clock starts: every home acknowledges a probe
        of each durability and runs it, `WARM_UP_ROUNDS` times, through this generator's
        own client. Without it the first submits of a run pay for processes still
        starting (channels, connection pools, TLS handshakes, lease elections on 2 busy
        cores): 0.3-0.6 s in the first second of most scenarios, a cold start rather than
        the fault under test. Probes are of kind `probe` (chaos.app), which journals
        nothing, so the checker never sees them. Returns (probes, seconds)."""
        started = time.monotonic()
        keys = {home_region(f"probe-{n}", self.topology): f"probe-{n}" for n in range(200)}
        missing = sorted({r.name for r in self.topology.regions} - set(keys))
        if missing:
            raise RunError(f"warm-up: no probe key found for home(s) {missing}")

        async def one(key: str, durability: str, n: int) -> None:
            task_id = f"{self.run_id}-probe-{n}-{key}-{durability}"
            last = "not submitted yet"
            while True:
                try:  # not ready yet: retried, bounded below
                    await self.client.submit("probe", key, b"", id=task_id, durability=durability)
                    last = f"status {(await self.client.get(task_id)).status}"
                    if last == "status succeeded":
                        return
                except GatewayError as exc:
                    last = f"{type(exc).__name__}: {exc}"
                if time.monotonic() - started > WARM_UP_S:
                    home = home_region(key, self.topology)
                    raise RunError(
                        f"warm-up: home {home} did not acknowledge and run {durability} probe "
                        f"{task_id} within {WARM_UP_S:g}s; last: {last}"
                    )
                await asyncio.sleep(0.1)

        levels = ("LOCAL", "REGION", "GLOBAL")
        for n in range(WARM_UP_ROUNDS):
            await asyncio.gather(*(one(k, d, n) for k in keys.values() for d in levels))
        return WARM_UP_ROUNDS * len(levels) * len(keys), time.monotonic() - started

    async def run(self, progress: Callable[[int, int, int], None]) -> None:
        start = time.monotonic()
        tasks: list[asyncio.Task[None]] = []
        payload = str(self.load.task_ms).encode()
        for n, (offset, task_id, key, durability) in enumerate(self.plan):
            if self.stopped:
                break
            delay = start + offset - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            lock = self._locks.setdefault(key, asyncio.Lock())
            tasks.append(asyncio.create_task(self._one(lock, task_id, key, durability, payload)))
            if n % max(1, int(self.load.rate)) == 0:
                acked = sum(1 for o in self.ops if o.acked is not None)
                progress(n, acked, sum(1 for o in self.ops if o.error is not None))
        await asyncio.gather(*tasks)
        await self.client.close()

    async def _one(
        self, lock: asyncio.Lock, task_id: str, key: str, durability: str, payload: bytes
    ) -> None:
        async with lock:
            op = Op(task_id, key, durability, self.clock(), home=home_region(key, self.topology))
            self.ops.append(op)
            try:
                await self.client.submit("step", key, payload, id=task_id, durability=durability)
                op.acked = self.clock()
            except Exception as exc:  # noqa: BLE001 - every failure is an outcome to record
                op.error = f"{type(exc).__name__}: {exc}"[:300]
                op.error_at = self.clock()

    def error_ratio(self, window_s: float) -> float:
        since = self.clock() - window_s
        recent = [o for o in self.ops if o.sent >= since and (o.acked or o.error_at)]
        return sum(1 for o in recent if o.error) / len(recent) if recent else 0.0
