"""The console's etcd side: routes, health votes, failover history, and the promotion
and failback the Failovers page starts (the same functions the CLI runs).

The console holds one `ControlPlane` dialled as a client (`client->X:etcd` links), like
`homeport region ...` does. Redis is reached only inside `promote`/`failback`, which
must move replication roles; every read the pages make is an etcd read.

The pages read as the `console` role, which etcd lets read and not write
(docs/security.md); a promotion or failback opens a control plane of its own with the
operator's credentials for as long as it runs.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from homeport.core.security import Identity
from homeport.regions import history
from homeport.regions.control import ControlPlane
from homeport.regions.health import Verdict, read_all_verdicts
from homeport.regions.promotion import FailbackReport, PromotionReport, Say, failback, promote
from homeport.regions.routing import Route
from homeport.regions.topology import Topology

AGENT_FRESH_S = 5.0  # an agent whose newest verdict is older than this is reported silent


@dataclass(frozen=True)
class HealthVotes:
    """What etcd says of one region: its agent's latest report (it writes verdicts on
    others under its lease, so silence means it is down or cut off) and how many peers
    currently reach it."""

    region: str
    agent_seen_s: float | None  # seconds since its agent last reported; None: never
    reached_by: tuple[str, ...]
    unreached_by: tuple[str, ...]

    @property
    def agent_alive(self) -> bool:
        return self.agent_seen_s is not None and self.agent_seen_s < AGENT_FRESH_S


class Control:
    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp

    @classmethod
    async def open(cls, topology: Topology) -> Control:
        return cls(await ControlPlane.open(topology, "client", identity=_reader(topology)))

    async def close(self) -> None:
        await self.cp.close()

    @property
    def topology(self) -> Topology:
        return self.cp.topology

    async def routes(self) -> dict[str, Route]:
        return dict((await self.cp.routing.load()).routes)

    async def health(self) -> dict[str, HealthVotes]:
        names = self.topology.region_names()
        found = await read_all_verdicts(self.cp.etcd, self.topology.etcd_prefix)
        verdicts: dict[str, list[Verdict]] = {n: found.get(n, []) for n in names}
        now = time.time()
        out = {}
        for name in names:
            reported = [v.at for vs in verdicts.values() for v in vs if v.observer == name]
            mine = verdicts[name]
            out[name] = HealthVotes(
                name,
                now - max(reported) if reported else None,
                tuple(sorted(v.observer for v in mine if v.ok)),
                tuple(sorted(v.observer for v in mine if not v.ok)),
            )
        return out

    async def history(self) -> list[history.FailoverEvent]:
        return await history.events(self.cp.etcd, self.topology.etcd_prefix)

    async def orphans(self, home: str, epoch: int) -> list[dict[str, object]]:
        """The orphans a failback recovered at `epoch` (kept in etcd by failback)."""
        raw = await self.cp.etcd.get(self.cp.prefix("orphans", home, str(epoch)))
        return list(json.loads(raw.value)) if raw else []

    @contextlib.asynccontextmanager
    async def _operator(self) -> AsyncIterator[ControlPlane]:
        """The operator's control plane, for one action: moving routes and replication
        roles needs rights the pages never hold."""
        operator = Identity.of(self.topology.security, "operator")
        cp = await ControlPlane.open(self.topology, "client", identity=operator)
        try:
            yield cp
        finally:
            await cp.close()

    async def promote(self, home: str, say: Say) -> PromotionReport:
        async with self._operator() as cp:
            await cp.routing.bootstrap(self.topology)
            return await promote(cp, home, reason="manual (console)", say=say)

    async def failback(self, home: str, say: Say) -> FailbackReport:
        async with self._operator() as cp:
            return await failback(cp, home, switch=True, say=say)


def _reader(topology: Topology) -> Identity:
    """The read-only `console` login, or the process's own role for a topology written
    before that role existed (or insecure)."""
    config = topology.security
    if config is not None and "console" in config.roles:
        return Identity.of(config, "console")
    return Identity.of(config)
