"""The deployment fields of a topology: where each region runs in the cloud and how big.

The same topology file that every homeport process and `homeport dev up` read also
drives `homeport deploy render`, so a production deployment has one source of truth.
The fields are optional in the file (the local cluster's topology has none): they are
checked for consistency whenever present, and demanded in full only when rendering
(`require_deployment`).

A region's `deploy` section:

    deploy:
      cloud_region: us-east-1          # the provider's region name
      cidr: 10.10.0.0/16               # the region's network; must not overlap another's
      nodes: {size: m6i.xlarge, min: 3, max: 6}
      redis: {replicas: 1, storage_gb: 50}
      workers: {replicas: 2, max: 20}
      gateways: {replicas: 2, max: 6}
      postgres: {size: db.r6g.large, storage_gb: 100}

and the topology's top-level `deployment` section names the deployment, the container
image, the App the workers run and the private DNS zone every address lives in.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Annotated

from homeport.regions.errors import TopologyError
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from homeport.regions.topology import Region, Topology

CloudRegion = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")]
Size = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.\-]{1,40}$")]


def _check_cidr(value: str) -> str:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"expected a network such as 10.10.0.0/16: {exc}") from None
    if not net.is_private:
        raise ValueError(f"{value} is not a private range (10/8, 172.16/12, 192.168/16)")
    if not 16 <= net.prefixlen <= 24:
        raise ValueError(f"prefix /{net.prefixlen} must be /16 to /24 to hold 4 subnets")
    return value


Cidr = Annotated[str, AfterValidator(_check_cidr)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NodePool(_Model):
    """The Kubernetes node group: `size` is the instance type, `min`/`max` its bounds."""

    size: Size
    min: int = Field(default=3, ge=1, le=100)
    max: int = Field(default=6, ge=1, le=200)

    @model_validator(mode="after")
    def _bounds(self) -> NodePool:
        if self.max < self.min:
            raise ValueError(f"max {self.max} is below min {self.min}; raise max")
        return self


class Scaled(_Model):
    """A Deployment scaled by an HPA: `replicas` is its floor, `max` its ceiling."""

    replicas: int = Field(ge=1, le=500)
    max: int = Field(ge=1, le=1000)

    @model_validator(mode="after")
    def _bounds(self) -> Scaled:
        if self.max < self.replicas:
            raise ValueError(f"max {self.max} is below replicas {self.replicas}; raise max")
        return self


class RedisSize(_Model):
    """The region's Redis StatefulSets: in-region `replicas` of the primary (at least one,
    or REGION durability has nothing to WAIT for) and each pod's volume in GiB."""

    replicas: int = Field(ge=1, le=5)
    storage_gb: int = Field(default=20, ge=1, le=16384)


class PostgresSize(_Model):
    """The managed PostgreSQL instance: `size` is its instance class."""

    size: Size
    storage_gb: int = Field(default=100, ge=20, le=65536)


class RegionDeploy(_Model):
    """Where and how big one region runs. Every field but the defaults is required:
    a missing size is refused with its field named."""

    cloud_region: CloudRegion
    cidr: Cidr
    nodes: NodePool
    redis: RedisSize
    workers: Scaled
    gateways: Scaled
    postgres: PostgresSize


class Deployment(_Model):
    """What the whole deployment shares: its name (the Terraform env and Helm release),
    the image every process runs, the App workers run, and the private DNS zone
    (created by terraform/modules/interconnect) in which every topology address lives."""

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,30}$")
    image: str = Field(pattern=r"^[a-z0-9./_:-]+(@sha256:[0-9a-f]{64})?$")
    app: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    dns_zone: str = Field(pattern=r"^([a-z0-9-]+\.)+[a-z]{2,}$")
    kubernetes_version: str = Field(default="1.31", pattern=r"^1\.\d{2}$")


def check_deployment(topo: Topology) -> None:
    """Cross-field checks of whatever deployment fields are present; raise TopologyError."""
    deployed = [(i, r) for i, r in enumerate(topo.regions) if r.deploy is not None]
    if not deployed:
        return
    for i, region in enumerate(topo.regions):
        if region.deploy is None:
            raise TopologyError(
                f"regions[{i}].deploy",
                None,
                f"region {region.name!r} has no deploy section while others do; "
                "give every region one, or none",
            )
    _check_cidrs(topo)
    _check_standby_clouds(topo)


def _check_cidrs(topo: Topology) -> None:
    seen: list[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]] = []
    for i, region in enumerate(topo.regions):
        if region.deploy is None:
            continue
        net = ipaddress.ip_network(region.deploy.cidr)
        for owner, other in seen:
            if net.overlaps(other):
                raise TopologyError(
                    f"regions[{i}].deploy.cidr",
                    region.deploy.cidr,
                    f"overlaps {owner} ({other}); peered networks need disjoint ranges",
                )
        seen.append((f"{region.name}'s cidr", net))


def _check_standby_clouds(topo: Topology) -> None:
    clouds = {r.name: r.deploy.cloud_region for r in topo.regions if r.deploy is not None}
    for i, region in enumerate(topo.regions):
        if region.standby is None or region.deploy is None:
            continue
        if clouds.get(region.standby) == region.deploy.cloud_region:
            raise TopologyError(
                f"regions[{i}].standby",
                region.standby,
                f"is in the same cloud region {region.deploy.cloud_region!r} as "
                f"{region.name!r}; a standby must survive its home's cloud region, "
                "choose a region elsewhere",
            )


def require_deployment(topo: Topology) -> Deployment:
    """The deployment section, once every field a render needs is there; else the first
    missing or unsupported field as a TopologyError."""
    if topo.deployment is None:
        raise TopologyError(
            "deployment", None, "missing; rendering needs name, image, app and dns_zone"
        )
    zone = topo.deployment.dns_zone
    for i, region in enumerate(topo.regions):
        if region.deploy is None:
            raise TopologyError(
                f"regions[{i}].deploy",
                None,
                f"missing for {region.name!r}; rendering needs cloud_region, cidr and sizes",
            )
        if region.redis.mode != "single":
            raise TopologyError(
                f"regions[{i}].redis.mode",
                region.redis.mode,
                "the Helm chart deploys single-mode Redis (primary, replicas, mirror); "
                "use mode 'single'",
            )
        for field, address in _addresses(region):
            if address is None:
                raise TopologyError(
                    f"regions[{i}].{field}", None, f"missing; give a name in {zone}"
                )
            host = address.rpartition(":")[0]
            if not host.endswith("." + zone):
                raise TopologyError(
                    f"regions[{i}].{field}",
                    address,
                    f"host must be a name in the private zone {zone!r} (Terraform creates it)",
                )
    return topo.deployment


def _addresses(region: Region) -> list[tuple[str, str | None]]:
    """The addresses other regions dial, each a DNS name the interconnect creates."""
    return [
        ("gateway", region.gateway),
        ("etcd", region.etcd),
        ("etcd_peer", region.etcd_peer),
        ("redis.primary", region.redis.primary),
        ("redis.mirror", region.redis.mirror),
    ]
