"""Multi-region serving for the gateway: the routing table in etcd decides which keys this
gateway writes, where, and at which epoch.

`RoutedServing` implements `ServingCheck` from a copy of the routing table refreshed
every `refresh_s` seconds and on demand. A key's home is `regions.placement.home_region`;
the key is written here only when its home's route says this region serves it, into the
copy the route names (the home's primary, or its promoted mirror after a failover), with
the route's epoch. Any other key is answered WRONG_REGION naming the serving region, its
epoch and its gateway.

Writes also need the gateway's etcd lease (`regions.fence.WriteFence`): when it lapses
(the region is cut off from the etcd quorum) every write is refused with UNAVAILABLE
before a failover could begin.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import KW_ONLY, dataclass, field

from homeport.core.broker import Broker
from homeport.core.errors import Unavailable, WrongRegion
from homeport.core.metrics import Metrics
from homeport.core.partitioner import partition_of
from homeport.core.producer import Producer
from homeport.core.retry import warn_repeated
from homeport.core.settings import Settings
from homeport.core.store import RecordStore
from homeport.regions.control import ControlPlane
from homeport.regions.fence import WriteFence
from homeport.regions.placement import home_region
from homeport.regions.routing import Route, RouteSnapshot, store_address
from homeport.regions.topology import Topology
from homeport.router.records import TaskLookup
from homeport.router.serving import Placement, ServedPartition

log = logging.getLogger(__name__)


@dataclass(eq=False)
class RoutedServing:
    topology: Topology
    region: str
    engine: Settings
    metrics: Metrics
    _: KW_ONLY
    refresh_s: float = 0.2  # seconds between two reads of the routing table
    lease_ttl_s: int = 3  # TTL in seconds of the write fence's etcd lease
    # The routing table placements are made from; replaced by `start` and every refresh.
    table: RouteSnapshot = field(default_factory=lambda: RouteSnapshot({}), init=False)

    def __post_init__(self) -> None:
        self._cp: ControlPlane | None = None
        self._fence: WriteFence | None = None
        self._task: asyncio.Task[None] | None = None
        self._producers: dict[tuple[str, str], tuple[Broker, Producer]] = {}
        self._stores: dict[str, RecordStore] = {}
        self._gateways = {
            r.name: self.topology.dial("client", r.name, "gateway", r.gateway)
            for r in self.topology.regions
            if r.gateway
        }

    async def start(self, advertise: str) -> None:
        self._cp = await ControlPlane.open(self.topology, self.region)
        self.table = await self._cp.routing.bootstrap(self.topology)
        self._fence = WriteFence(
            self._cp.etcd, self.topology.etcd_prefix, self.region,
            f"{advertise}-{uuid.uuid4().hex[:6]}", self.lease_ttl_s,
        )  # fmt: skip
        await self._fence.start(advertise)
        self._task = asyncio.create_task(self._follow(), name="routing-follow")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for broker, _ in self._producers.values():
            await broker.close()
        self._producers.clear()
        for store in self._stores.values():
            await store.close()
        self._stores.clear()
        if self._fence is not None:
            await self._fence.stop()
        if self._cp is not None:
            await self._cp.close()

    async def _follow(self) -> None:
        failures = 0
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                if self._cp is not None:
                    self.table = await self._cp.routing.load()
                failures = 0
            except Exception as exc:  # noqa: BLE001 - keep the last table; the fence decides
                failures += 1
                self.metrics.loop_errors.labels("routing-follow").inc()
                warn_repeated(log, "routing table refresh", failures, exc)

    # --- ServingCheck ---------------------------------------------------------------

    def _route(self, home: str) -> Route:
        route = self.table.routes.get(home)
        if route is None:
            raise Unavailable("routing table", f"no route for home region {home!r} yet")
        return route

    def place(self, key: str) -> Placement:
        if self._fence is None or not self._fence.open:
            raise Unavailable(
                "write fence", f"gateway in {self.region} holds no etcd lease; not writing"
            )
        home = home_region(key, self.topology)
        route = self._route(home)
        if route.serving != self.region:
            raise WrongRegion(
                key, route.serving, route.epoch, self._gateways.get(route.serving, "")
            )
        partitions = self.topology.region(home).partitions
        return Placement(key, home, partition_of(key, partitions), route.epoch)

    def served(self) -> list[ServedPartition]:
        out = []
        for route in self.table.served_by(self.region):
            partitions = self.topology.region(route.home).partitions
            out += [ServedPartition(route.home, p, route.epoch) for p in range(partitions)]
        return out

    def owner_hints(self, partition: str) -> dict[str, str]:
        home = partition.partition("/")[0]
        route = self.table.routes.get(home)
        if route is None:
            return {}
        return {
            "owner_region": route.serving,
            "epoch": str(route.epoch),
            "gateway": self._gateways.get(route.serving, ""),
        }

    # --- producers per served home ----------------------------------------------------

    async def producer_for(self, home: str) -> Producer:
        """The producer writing `home`'s current copy, made on first use per copy."""
        route = self._route(home)
        host, port = store_address(self.topology, route, self.region)
        key = (home, f"{host}:{port}")
        found = self._producers.get(key)
        if found is not None:
            return found[1]
        region = self.topology.region(home)
        settings = self.engine.but(
            region=home,
            partitions=region.partitions,
            redis_url=f"redis://{host}:{port}/0",
            redis_cluster=region.redis.mode == "cluster",
            global_replicas=region.redis.replicas_for_global,
        )
        broker = Broker.from_settings(settings)
        await broker.connect()
        producer = Producer(broker, settings, self.metrics)
        self._producers[key] = (broker, producer)
        return producer

    # --- reading any home's tasks (router.finder) -------------------------------------

    async def broker_for(self, home: str) -> Broker:
        """The broker of `home`'s current copy (the one its producer writes)."""
        await self.producer_for(home)
        host, port = store_address(self.topology, self._route(home), self.region)
        return self._producers[(home, f"{host}:{port}")][0]

    def homes(self) -> list[str]:
        """Every home region, this gateway's own first."""
        names = self.topology.region_names()
        return sorted(names, key=lambda name: name != self.region)

    def home_of(self, key: str) -> str:
        return home_region(key, self.topology)

    async def lookup_for(self, home: str) -> TaskLookup:
        """A reader of `home`'s tasks: its serving copy (as the route says now) and its
        record store (a home's records live in its own database wherever it is served)."""
        broker = await self.broker_for(home)
        store = self._stores.get(home)
        if store is None:
            dsn = self.topology.region(home).postgres
            server = dsn.split("@", 1)[1].split("/", 1)[0]
            dsn = dsn.replace(server, self.topology.dial(self.region, home, "postgres", server))
            store = await RecordStore.connect(dsn, max_size=2)
            self._stores[home] = store
        return TaskLookup(broker, store, home, self.topology.region(home).partitions)
