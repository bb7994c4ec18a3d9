"""The control plane's handle on a deployment: topology, etcd, the routing table, and
Redis clients dialled from the region the caller runs in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import aetcd
import redis.asyncio as aredis
from homeport.core.security import Identity
from homeport.regions import stores
from homeport.regions.etcd import connect, endpoints_for
from homeport.regions.routing import Route, RoutingStore, spare_address, store_address
from homeport.regions.topology import Topology, split_address


@dataclass
class ControlPlane:
    topology: Topology
    etcd: aetcd.Client
    src: str  # where this process runs: a region name, or "client"
    routing: RoutingStore = field(init=False)
    _redis: dict[str, aredis.Redis] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.routing = RoutingStore(self.etcd, self.topology.etcd_prefix)

    @classmethod
    async def open(
        cls, topology: Topology, src: str, identity: Identity | None = None
    ) -> ControlPlane:
        """`identity`: whose etcd login (default: this process's role)."""
        etcd = await connect(
            endpoints_for(topology, src), identity=identity or Identity.of(topology.security)
        )
        return cls(topology, etcd, src)

    async def close(self) -> None:
        for client in self._redis.values():
            await client.aclose()
        self._redis.clear()
        await self.etcd.close()

    def _client(self, address: str) -> aredis.Redis:
        if address not in self._redis:
            host, port = split_address(address)
            self._redis[address] = stores.client(
                host, port, identity=Identity.of(self.topology.security)
            )
        return self._redis[address]

    def primary(self, home: str) -> aredis.Redis:
        """`home`'s own primary, as this process reaches it."""
        region = self.topology.region(home)
        src = self.src if self.src != "client" else home
        return self._client(self.topology.dial(src, home, "redis", region.redis.primary or ""))

    def mirror(self, home: str) -> aredis.Redis:
        """`home`'s mirror (hosted in its standby), as this process reaches it."""
        region = self.topology.region(home)
        host_region = region.standby or home
        address = region.redis.mirror or ""
        if self.src not in (host_region, "client"):
            address = self.topology.dial(self.src, host_region, "mirror", address)
        return self._client(address)

    def spare(self, region: str) -> aredis.Redis:
        """`region`'s spare (see `regions.spares`), dialled directly: no link carries
        control traffic to spares, and the controller never lends a spare of a region it
        judges down."""
        return self._client(spare_address(self.topology, region))

    def store(self, route: Route) -> aredis.Redis:
        host, port = store_address(
            self.topology, route, self.src if self.src != "client" else route.serving
        )
        return self._client(f"{host}:{port}")

    def prefix(self, *parts: str) -> bytes:
        return "/".join([self.topology.etcd_prefix.rstrip("/"), *parts]).encode()
