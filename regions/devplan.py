"""What a local cluster is made of, decided before anything starts: the regions to run
(`ClusterSpec`), and the plan `up` follows (`plan_cluster`): a free port for every
server, the topology they make, and the Toxiproxy link of every path that crosses a
region or comes from a client. Used by `regions.devcluster`."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Literal

from homeport.core.security import SecurityConfig
from homeport.regions import spares
from homeport.regions.ports import PortPicker
from homeport.regions.topology import (
    CapacityPolicy,
    Link,
    Region,
    RegionRedis,
    Topology,
    Toxiproxy,
)

REGION_NAMES = ("us-east", "eu-west", "ap-south", "sa-east", "af-south", "me-central", "ca-west")
HOST = "127.0.0.1"
CLUSTER_BUS = 10000  # Redis Cluster nodes also listen on port + 10000


@dataclass(frozen=True)
class RegionSpec:
    """What to run for one region. `mode="cluster"` starts a real Redis Cluster."""

    name: str
    mode: Literal["single", "cluster"] = "single"
    partitions: int = 16


@dataclass(frozen=True)
class ClusterSpec:
    """What `up` starts. `services`: the App (`pkg.module:attr`) whose workers the region
    agents run; when set, every region also gets a gateway and an agent process. None
    starts the servers only."""

    regions: tuple[RegionSpec, ...]
    seed: int = field(default_factory=lambda: secrets.randbelow(2**31))
    services: str | None = None
    workers: int = 2  # worker processes per served home region (with services)
    # Also run a Prometheus server with the project's rules (`regions.prometheus`).
    with_prometheus: bool = False
    # No credentials and no TLS anywhere (docs/security.md says what that gives up).
    insecure: bool = False
    # Credentials and CA made beforehand (`regions.security.generate`) instead of new
    # ones: a test session's clusters share one set (`security.cluster_security`).
    shared_security: SecurityConfig | None = None
    # The topology's `capacity:` block (None = its defaults), e.g. a game day's limit.
    capacity: CapacityPolicy | None = None

    @classmethod
    def default(
        cls, n: int = 3, partitions: int = 16, cluster_regions: tuple[str, ...] = ()
    ) -> ClusterSpec:
        if not 1 <= n <= len(REGION_NAMES):
            raise ValueError(f"--regions {n}: choose between 1 and {len(REGION_NAMES)}")
        names = REGION_NAMES[:n]
        unknown = sorted(set(cluster_regions) - set(names))
        if unknown:
            raise ValueError(f"--cluster-region {unknown[0]!r} is not one of {list(names)}")
        return cls(
            tuple(
                RegionSpec(name, "cluster" if name in cluster_regions else "single", partitions)
                for name in names
            )
        )


def database_name(region: str) -> str:
    return "homeport_" + region.replace("-", "_")


@dataclass
class Plan:
    """Ports and addresses chosen for one `up`, before anything starts."""

    topology: Topology
    pg_port: int
    toxiproxy_api: int
    # region -> (client, peer, metrics): /metrics and /health in plaintext, without
    # client certificates, for Prometheus (the client port may demand them).
    etcd_ports: dict[str, tuple[int, int, int]]


def plan_cluster(
    spec: ClusterSpec, picker: PortPicker, security: SecurityConfig | None = None
) -> Plan:
    names = [r.name for r in spec.regions]
    pg_port, tox_api = picker.take(), picker.take()
    regions: list[Region] = []
    links: list[Link] = []
    etcd_ports: dict[str, tuple[int, int, int]] = {}

    def link(name: str, upstream: str) -> str:
        listen = f"{HOST}:{picker.take()}"
        links.append(Link(name=name, listen=listen, upstream=upstream))
        return listen

    for i, rs in enumerate(spec.regions):
        standby = names[(i + 1) % len(names)] if len(names) > 1 else None
        client, peer = picker.take(), picker.take()
        etcd_ports[rs.name] = (client, peer, picker.take())
        if rs.mode == "single":
            redis = RegionRedis(
                mode="single",
                primary=f"{HOST}:{picker.take()}",
                replicas=[f"{HOST}:{picker.take()}"],
                mirror=f"{HOST}:{picker.take()}",
                mirror_replicas=[f"{HOST}:{picker.take()}"] if standby is not None else [],
                spare=f"{HOST}:{picker.take()}" if standby is not None else None,
            )
        else:
            redis = RegionRedis(
                mode="cluster",
                nodes=[f"{HOST}:{picker.take(CLUSTER_BUS)}" for _ in range(3)],
                replicas=[f"{HOST}:{picker.take(CLUSTER_BUS)}" for _ in range(3)],
                mirrors=[f"{HOST}:{picker.take(CLUSTER_BUS)}" for _ in range(3)],
            )
        region = Region(
            name=rs.name,
            partitions=rs.partitions,
            standby=standby,
            redis=redis,
            postgres=f"postgresql://postgres@{HOST}:{pg_port}/{database_name(rs.name)}",
            etcd=f"{HOST}:{client}",
            etcd_peer=f"{HOST}:{peer}",
            gateway=f"{HOST}:{picker.take()}",
            admin=f"{HOST}:{picker.take()}",
        )
        regions.append(region)
        link(f"client->{rs.name}:gateway", region.gateway or "")
        link(f"client->{rs.name}:etcd", region.etcd)
        # Every region reaches every member through a link of its own: a region's
        # processes use their own member first and fail over to the others.
        for src in names:
            link(f"{src}->{rs.name}:etcd", region.etcd)
        link(f"peers->{rs.name}:etcd-peer", region.etcd_peer or "")
        link(f"{rs.name}->{rs.name}:postgres", f"{HOST}:{pg_port}")
        spares.plan_links(rs.name, standby, redis, names, link)
    topology = Topology(
        regions=regions,
        etcd_prefix=f"/homeport-{spec.seed}",
        toxiproxy=Toxiproxy(api=f"http://{HOST}:{tox_api}"),
        links=links,
        security=security,
        capacity=spec.capacity,
    )
    return Plan(topology, pg_port, tox_api, etcd_ports)
