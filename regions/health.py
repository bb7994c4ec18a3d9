"""Health observers: every region probes every other region and reports to etcd.

Each observer PINGs each other region's Redis primary through its own link
(`<observer>-><target>:redis`) and writes its verdict to
`<prefix>/health/<target>/<observer>`, attached to the observer's lease. A verdict holds
`ok` and `since`, the time the current state began. An observer that dies or loses etcd
has its verdicts vanish with its lease, so a silent observer never counts as a vote;
one that is alive but stalled (its lease is kept alive apart from its probes) leaves a
verdict that stops being refreshed, and a stale verdict does not count either.

`judge` turns the reports into a decision: a region is **down** when a quorum (a strict
majority of all regions) of *other* regions has reported it unreachable continuously for
at least `confirm_s` seconds, each in a fresh verdict. One observer alone can never reach
a majority of three.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

import aetcd
import redis.asyncio as aredis
from homeport.core.loop import Loop
from homeport.core.metrics import Metrics
from homeport.core.security import Identity
from homeport.regions import stores
from homeport.regions.leases import HeldLease
from homeport.regions.metrics import RegionsMetrics
from homeport.regions.topology import Topology, split_address


@dataclass(frozen=True)
class Verdict:
    observer: str
    target: str
    ok: bool
    since: float
    at: float


# Seconds between two writes of an unchanged 'reachable' verdict (`Observer._due`).
OK_REFRESH_S = 1.0


def _key(prefix: str, target: str, observer: str = "") -> bytes:
    return f"{prefix.rstrip('/')}/health/{target}/{observer}".encode()


class Observer(Loop):
    """Probes every other region from `region` every `interval_s` seconds."""

    name = "health-observer"

    def __init__(
        self,
        topology: Topology,
        region: str,
        client: aetcd.Client,
        metrics: Metrics,
        regions_metrics: RegionsMetrics,
        interval_s: float = 0.25,
        probe_timeout_s: float = 0.5,
    ) -> None:
        super().__init__(interval_s, metrics)
        self.topology = topology
        self.region = region
        self.client = client
        self.rm = regions_metrics
        self.lease = HeldLease(client, ttl=3)
        self.timeout = probe_timeout_s
        self._since: dict[str, tuple[bool, float]] = {}
        # target -> (verdict, lease id, wall time) of the last verdict written
        self._written: dict[str, tuple[bool, int | None, float]] = {}
        self._stores: dict[str, aredis.Redis] = {}

    def _store(self, target: str) -> aredis.Redis | None:
        region = self.topology.region(target)
        address = region.redis.primary or (region.redis.nodes[0] if region.redis.nodes else None)
        if address is None:
            return None
        if target not in self._stores:
            host, port = split_address(self.topology.dial(self.region, target, "redis", address))
            self._stores[target] = stores.client(
                host, port, self.timeout, Identity.of(self.topology.security)
            )
        return self._stores[target]

    async def probe(self, target: str) -> bool | None:
        store = self._store(target)
        if store is None:
            return False
        return await timed_probe(store, self.timeout)

    async def run_once(self) -> float | None:
        if not self.lease.valid:
            await self.lease.grant()
        self.lease.start()  # kept alive in the background, not by (slow) probe rounds
        now = time.time()
        for target in self.topology.region_names():
            if target == self.region:
                continue
            ok = await self.probe(target)
            if ok is None:  # this process was starved: no evidence either way
                self._since.pop(target, None)  # nor continuity across the gap
                continue
            self.rm.region_reachable.labels(self.region, target).set(1 if ok else 0)
            prev = self._since.get(target)
            since = prev[1] if prev is not None and prev[0] == ok else now
            self._since[target] = (ok, since)
            if not self._due(target, ok, now):
                continue
            verdict = {"ok": ok, "since": since, "at": now}
            await self.client.put(
                _key(self.topology.etcd_prefix, target, self.region),
                json.dumps(verdict).encode(),
                lease=self.lease.lease_id,
            )
            self._written[target] = (ok, self.lease.lease_id, now)
        return None

    def _due(self, target: str, ok: bool, now: float) -> bool:
        """Write this probe's verdict? Every 'unreachable' one: a vote needs the latest
        probe (`at`) and its window. A 'reachable' one only when it changes, when the
        lease (and so the key) is new, or every `OK_REFRESH_S`: only 'unreachable'
        verdicts vote, so a fresh 'reachable' one is for the eye, and writing it every
        probe made a quarter of an idle cluster's etcd load (each put is a raft commit on
        every member)."""
        last = self._written.get(target)
        return (
            not ok
            or last is None
            or not last[0]
            or last[1] != self.lease.lease_id
            or now - last[2] >= OK_REFRESH_S
        )

    async def stop(self) -> None:
        await super().stop()
        await self.lease.stop(revoke=True)
        for store in self._stores.values():
            await store.aclose()


async def timed_probe(store: aredis.Redis, timeout: float) -> bool | None:
    """PING `store` within `timeout`: True, False, or None when the answer says nothing.
    A failed probe that took more than twice `timeout` (the probe bounds itself at
    `timeout`) ran in a process that did not get the CPU in time: its timer fired late,
    or its handshake was starved. That is the observer's trouble, not the target's, and
    two starved observers must not vote a healthy region down (a CI run failed over one
    so, 2026-12-02: one vote from a cut link, one from an agent starved for 3 s). A
    refused connection answers at once and is always evidence."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    try:
        ok = await asyncio.wait_for(stores.reachable(store), timeout)
    except TimeoutError:
        ok = False
    if not ok and loop.time() - began > 2 * timeout:
        return None
    return ok


async def read_all_verdicts(client: aetcd.Client, prefix: str) -> dict[str, list[Verdict]]:
    """Every observer's verdict, per target region, in one etcd read."""
    found = await client.get_prefix(f"{prefix.rstrip('/')}/health/".encode())
    out: dict[str, list[Verdict]] = {}
    for kv in found:
        about, observer = kv.key.decode().rsplit("/", 2)[1:]
        data = json.loads(kv.value)
        out.setdefault(about, []).append(
            Verdict(observer, about, data["ok"], data["since"], data["at"])
        )
    return out


@dataclass(frozen=True)
class Judgement:
    target: str
    down: bool
    voters: list[str]
    needed: int
    reason: str
    # The earliest start of a voter's 'unreachable' window: when the target was first
    # seen down (the capacity check's outage starts here). None without votes.
    since: float | None = None


def judge(
    target: str, verdicts: list[Verdict], regions: int, confirm_s: float, now: float
) -> Judgement:
    """Is `target` down? Only other regions vote; a quorum is a strict majority of all
    regions. A vote counts when its observer itself probed 'unreachable' for at least
    `confirm_s` seconds (`at - since`, both on the observer's clock) and its latest probe
    is fresh (at most `confirm_s` old). An observer whose loop stalled after one failed
    probe keeps its lease, and so its verdict, alive: that verdict ages, but it is not
    evidence that the target is still unreachable, so it never votes."""
    needed = regions // 2 + 1
    votes = [
        v
        for v in verdicts
        if v.observer != target
        and not v.ok
        and v.at - v.since >= confirm_s
        and now - v.at <= confirm_s
    ]
    voters = sorted(v.observer for v in votes)
    since = min((v.since for v in votes), default=None)
    if len(voters) >= needed:
        reason = f"{len(voters)} of {regions} regions ({', '.join(voters)}) cannot reach it"
        reason += f" for >= {confirm_s:g}s"
        return Judgement(target, True, voters, needed, reason, since)
    return Judgement(
        target, False, voters, needed, f"{len(voters)} votes of the {needed} needed", since
    )
