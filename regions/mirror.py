"""Cross-region mirroring is Redis replication; this module measures how far behind a
mirror is.

Two measures per (home, standby) pair:

- **bytes**: the primary's `master_repl_offset` minus the offset the mirror has applied
  (`slave_repl_offset` from the mirror's own INFO);
- **seconds**: every probe writes the primary's clock into `hp:{<home>}:heartbeat`; the
  mirror's copy of that key is how old its view is. Resolution is the probe interval.

This lag is the recovery point (RPO) of LOCAL and REGION tasks: a task acknowledged less
than `lag` before the home is lost may be missing from the mirror. GLOBAL tasks wait for
the mirror (see `docs/multi-region.md`) and are not exposed to it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis.asyncio as aredis
from homeport.core.loop import Loop
from homeport.core.metrics import Metrics
from homeport.core.security import Identity
from homeport.regions import stores
from homeport.regions.metrics import RegionsMetrics
from homeport.regions.topology import Topology, split_address


def heartbeat_key(home: str) -> str:
    return f"hp:{{{home}}}:heartbeat"


@dataclass(frozen=True)
class MirrorLag:
    home: str
    standby: str
    bytes: int
    seconds: float
    link_up: bool


async def measure(
    primary: aredis.Redis, mirror: aredis.Redis, home: str, standby: str
) -> MirrorLag:
    gap, seconds, link_up = await stores.mirror_lag(
        primary, mirror, heartbeat_key(home), time.time()
    )
    return MirrorLag(home, standby, gap, seconds, link_up)


class MirrorLagProbe(Loop):
    """Measures every single-mode home's mirror, from the process's own region."""

    name = "mirror-lag"

    def __init__(
        self,
        topology: Topology,
        src: str,
        metrics: Metrics,
        regions_metrics: RegionsMetrics,
        interval_s: float = 0.5,
    ) -> None:
        super().__init__(interval_s, metrics)
        self.topology = topology
        self.src = src
        self.rm = regions_metrics
        self.last: dict[str, MirrorLag] = {}
        self._clients: dict[str, aredis.Redis] = {}

    def _client(self, address: str) -> aredis.Redis:
        if address not in self._clients:
            host, port = split_address(address)
            self._clients[address] = stores.client(
                host, port, timeout=1.0, identity=Identity.of(self.topology.security)
            )
        return self._clients[address]

    async def run_once(self) -> float | None:
        for home in self.topology.regions:
            r = home.redis
            if r.mode != "single" or r.primary is None or r.mirror is None or home.standby is None:
                continue
            primary = self._client(self.topology.dial(self.src, home.name, "redis", r.primary))
            mirror_at = r.mirror
            if self.src != home.standby:
                mirror_at = self.topology.dial(self.src, home.standby, "mirror", r.mirror)
            lag = await measure(primary, self._client(mirror_at), home.name, home.standby)
            self.last[home.name] = lag
            labels = (home.name, home.standby)
            self.rm.mirror_lag_bytes.labels(*labels).set(lag.bytes)
            self.rm.mirror_lag_seconds.labels(*labels).set(lag.seconds)
            self.rm.mirror_link_up.labels(*labels).set(1 if lag.link_up else 0)
        return None

    async def stop(self) -> None:
        await super().stop()
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
