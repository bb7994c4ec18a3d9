"""What a scenario may name, for a topology shape, before any cluster runs.

Link names come from the launcher's own plan (`regions.devcluster`), so validation and the
running cluster can never disagree on a proxy's name. Component names follow the
launcher's naming (`redis-<home>-primary`, `etcd-<region>`, ...) plus the services it runs
per region (`gateway-<region>`, `agent-<region>`) and the workers an agent runs per home
(`worker-<home>-<i>`, listed under their home); each component is listed
with the region that *hosts* it, which is what region loss and isolation act on (a home's
mirror is hosted by its standby).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache

from homeport.regions.devplan import ClusterSpec, plan_cluster
from homeport.regions.ports import PortPicker
from homeport.regions.topology import Topology

KINDS = ("redis", "etcd", "postgres", "toxiproxy", "gateway", "worker", "agent")


@dataclass(frozen=True)
class Component:
    name: str
    kind: str
    region: str  # the hosting region; "" for the shared servers (postgres, toxiproxy)


@dataclass(frozen=True)
class Catalog:
    """Every link and component of one topology shape."""

    regions: tuple[str, ...]
    standby: dict[str, str]
    links: tuple[str, ...]
    components: tuple[Component, ...]

    def component(self, name: str) -> Component | None:
        return next((c for c in self.components if c.name == name), None)

    def hosted_by(self, region: str) -> list[Component]:
        return [c for c in self.components if c.region == region]

    def links_of(self, region: str) -> list[str]:
        """Every link into or out of `region` (isolation cuts these). Links that stay
        inside the region (`A->A:...`) and the clients' own links are kept."""
        out = []
        for name in self.links:
            src, _, rest = name.partition("->")
            dst = rest.partition(":")[0]
            if src == dst:
                continue
            if region in (src, dst) or (src == "peers" and dst == region):
                out.append(name)
        return out


@lru_cache(maxsize=16)
def _dry_topology(regions: int) -> Topology:
    return plan_cluster(ClusterSpec.default(regions, 1), PortPicker(random.Random(0))).topology


@lru_cache(maxsize=16)
def catalog(regions: int, workers_per_region: int) -> Catalog:
    topo = _dry_topology(regions)
    names = tuple(topo.region_names())
    standby = {r.name: r.standby or r.name for r in topo.regions}
    comps = [Component("toxiproxy", "toxiproxy", ""), Component("postgres", "postgres", "")]
    for r in names:
        comps += [
            Component(f"redis-{r}-primary", "redis", r),
            Component(f"redis-{r}-replica0", "redis", r),
            Component(f"redis-{r}-mirror", "redis", standby[r]),
            Component(f"redis-{r}-spare", "redis", r),
            Component(f"etcd-{r}", "etcd", r),
            Component(f"gateway-{r}", "gateway", r),
            Component(f"agent-{r}", "agent", r),
        ]
        comps += [Component(f"worker-{r}-{i}", "worker", r) for i in range(workers_per_region)]
    return Catalog(names, standby, tuple(link.name for link in topo.links), tuple(comps))
