"""The SDK's routing table, read from etcd: send each key straight to the gateway of the
region that serves its home now.

`EtcdRoutingTable` loads the routes once (`open`), then answers from memory. A
WRONG_REGION redirect updates the cached route of the key's home at once, when its epoch
is newer than the cached one (an older redirect, from a gateway that has not caught up
yet, never moves a route back). `refresh` reloads the table from etcd; the SDK calls it
when a gateway is unreachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses

import aetcd
from homeport.regions.control import ControlPlane
from homeport.regions.placement import home_region
from homeport.regions.routing import Route
from homeport.regions.routing import RouteSnapshot as Routes
from homeport.regions.topology import Topology
from homeport.router.routing import Redirect


class EtcdRoutingTable:
    def __init__(self, topology: Topology, cp: ControlPlane, routes: Routes) -> None:
        self.topology = topology
        self._cp = cp
        self._routes = dict(routes.routes)
        self._lock = asyncio.Lock()
        self._refreshes = 0
        self._gateways = {
            r.name: topology.dial("client", r.name, "gateway", r.gateway)
            for r in topology.regions
            if r.gateway
        }

    @classmethod
    async def open(cls, topology: Topology) -> EtcdRoutingTable:
        cp = await ControlPlane.open(topology, "client")
        return cls(topology, cp, await cp.routing.load())

    async def close(self) -> None:
        await self._cp.close()

    def route(self, home: str) -> Route | None:
        return self._routes.get(home)

    def gateway_for(self, key: str) -> str:
        home = home_region(key, self.topology)
        route = self._routes.get(home)
        serving = route.serving if route is not None else home
        return self._gateways[serving]

    def any_gateway(self) -> str:
        return next(iter(self._gateways.values()))

    def learn(self, redirect: Redirect) -> None:
        if not redirect.key:
            # A FENCED answer names a partition, not a key, and its owner comes from a
            # gateway that may itself be stale: let the next refresh decide instead.
            return
        home = home_region(redirect.key, self.topology)
        current = self._routes.get(home)
        if current is None or redirect.epoch > current.epoch:
            base = current or Route(home, redirect.owner_region, redirect.epoch)
            self._routes[home] = dataclasses.replace(
                base, serving=redirect.owner_region, epoch=redirect.epoch
            )
        if redirect.gateway and redirect.owner_region not in self._gateways:
            self._gateways[redirect.owner_region] = redirect.gateway

    async def refresh(self) -> None:
        """Reload the routes; when the etcd member this client used is gone, reconnect to
        any member that answers (a lost region takes its member with it)."""
        # One refresh at a time: callers that arrive meanwhile share its result, and a
        # reconnect never closes the client under another caller's in-flight read.
        started = self._refreshes
        async with self._lock:
            if self._refreshes != started:
                return
            try:
                table = await self._cp.routing.load()
            except (aetcd.ClientError, OSError, TimeoutError):
                with contextlib.suppress(Exception):
                    await self._cp.close()
                self._cp = await ControlPlane.open(self.topology, "client")
                table = await self._cp.routing.load()
            self._routes = dict(table.routes)
            self._refreshes += 1
