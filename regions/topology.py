"""The topology: which regions exist, how each one's servers are reached, and the links
between them.

Every homeport process reads the same YAML topology file. `homeport dev up` writes one
for the local cluster; a production deployment writes its own. The file names *real*
server addresses only. Toxiproxy proxies are listed separately under `links`, each named
`<from>-><to>:<service>`; `Topology.dial` is the one place that decides whether a
connection from `<from>` to a service of `<to>` goes through a proxy, so chaos can cut or
slow any link without any process knowing about Toxiproxy.

Link names (`<from>` is a region name, `client` or `peers`):

- `client->A:gateway`   clients to region A's gateway
- `client->A:etcd`      clients (SDK, CLI) to region A's etcd member
- `B->A:etcd`           region B's processes to A's etcd member (B = A: their own member,
                        tried first; the others are the fallback when it is lost)
- `peers->A:etcd-peer`  Raft traffic from the other members into A's member
- `A->A:redis`          region A's processes to A's Redis primary (single mode)
- `B->A:redis`          region B's processes to A's primary; for B = A's standby, also the
                        cross-region mirror replicating A's primary
- `C->B:mirror`         region C to the mirror hosted in B (A's, B = A's standby): for C = A,
                        failback replication; for another C, C's spare re-protecting the
                        promoted mirror (`regions.protection`)
- `A->A:postgres`       region A's processes to A's PostgreSQL database
"""

from __future__ import annotations

import fnmatch
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import click
import yaml
from homeport.core.config import read_yaml
from homeport.core.security import SecurityConfig
from homeport.regions.deployment import Deployment, RegionDeploy, check_deployment
from homeport.regions.errors import TopologyError
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

_ADDRESS = re.compile(r"^(?P<host>[A-Za-z0-9.\-]+):(?P<port>\d{1,5})$")
_LINK = re.compile(r"^(?P<src>[a-z][a-z0-9-]*)->(?P<dst>[a-z][a-z0-9-]*):(?P<svc>[a-z-]+)$")
SERVICES = ("gateway", "etcd", "etcd-peer", "redis", "mirror", "postgres")


def _check_address(value: str) -> str:
    match = _ADDRESS.match(value)
    if match is None:
        raise ValueError(f"expected host:port such as 127.0.0.1:6379, got {value!r}")
    port = int(match["port"])
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is out of range 1-65535")
    return value


Address = Annotated[str, AfterValidator(_check_address)]
RegionName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,31}$")]


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegionRedis(_Model):
    """One region's Redis deployment.

    `single`: one primary, its in-region replicas, and `mirror`, the replica of the primary
    that lives in the standby region, with `mirror_replicas` replicating the mirror inside
    the standby region (so a promoted mirror still has an in-region replica: REGION
    durability keeps working after a failover). `cluster`: a real Redis Cluster; `nodes` are its
    masters (seeds), `replicas` its in-region replica nodes and `mirrors` the replica nodes
    placed in the standby region.
    """

    mode: Literal["single", "cluster"] = "single"
    primary: Address | None = None
    replicas: list[Address] = []
    mirror: Address | None = None
    mirror_replicas: list[Address] = []
    nodes: list[Address] = []
    mirrors: list[Address] = []
    # An empty Redis of this region, lent to another home whose cross-region replica is
    # lost (re-protection, `regions.protection`); None: this region lends none.
    spare: Address | None = None

    @model_validator(mode="after")
    def _mode_fields(self) -> RegionRedis:
        if self.mode == "single" and self.primary is None:
            raise ValueError("mode 'single' needs 'primary' (host:port of the Redis primary)")
        if self.mode == "cluster" and len(self.nodes) < 3:
            raise ValueError(
                f"mode 'cluster' needs at least 3 master 'nodes', got {len(self.nodes)}"
            )
        return self

    def addresses(self) -> list[str]:
        return [
            a
            for a in [
                self.primary,
                *self.replicas,
                self.mirror,
                *self.mirror_replicas,
                *self.nodes,
                *self.mirrors,
                self.spare,
            ]
            if a
        ]

    @property
    def replicas_for_global(self) -> int:
        """How many replicas `WAIT` must count for GLOBAL durability: every in-region
        replica of the primary plus its cross-region mirror (one of each per shard)."""
        if self.mode == "single":
            return len(self.replicas) + (1 if self.mirror else 0)
        shards = max(len(self.nodes), 1)
        return (len(self.replicas) + len(self.mirrors)) // shards


class Region(_Model):
    """A home region: its partitions, its standby and how its servers are reached."""

    name: RegionName
    partitions: int = Field(default=16, ge=1, le=4096)
    standby: RegionName | None = None
    redis: RegionRedis
    postgres: str = Field(pattern=r"^postgres(ql)?://")
    etcd: Address
    etcd_peer: Address | None = None
    gateway: Address | None = None
    admin: Address | None = None
    deploy: RegionDeploy | None = None  # cloud placement and sizes (regions/deployment.py)


class PinRule(_Model):
    """Keys matching `pattern` (shell glob, e.g. `eu:*`) live in `region`."""

    pattern: str = Field(min_length=1)
    region: RegionName


class Link(_Model):
    """A Toxiproxy proxy: `listen` forwards to `upstream`."""

    name: str
    listen: Address
    upstream: Address

    @model_validator(mode="after")
    def _name_shape(self) -> Link:
        match = _LINK.match(self.name)
        if match is None or match["svc"] not in SERVICES:
            raise ValueError(
                f"link name {self.name!r} must look like '<from>-><to>:<service>' with service "
                f"one of {', '.join(SERVICES)}"
            )
        return self


class Toxiproxy(_Model):
    api: str = Field(pattern=r"^http://")


class CapacityPolicy(_Model):
    """The capacity check before a promotion (`regions.capacity`, docs/simulation.md).

    The controller promotes whatever the check says (availability first); when the
    model says the standby cannot absorb the home, it raises an alert and orders the
    standby's agent to run more workers for the home, up to `max_workers`."""

    check: bool = True  # False = promote without asking the model (no alert, no scale-up)
    p99_wait_s: float = Field(default=1.0, gt=0)  # SLO: p99 queue wait, seconds; > 0
    max_drain_s: float = Field(default=60.0, gt=0)  # outage backlog drain limit, seconds; > 0
    # Most worker processes a standby's agent runs for one served home after a scale-up
    # (its own `--workers` is the floor); >= 1.
    max_workers: int = Field(default=8, ge=1, le=256)
    # Seconds from a scale order until the added workers serve, used only until the
    # standby's agent has measured its workers' boot (`capacity.scale_delay`; a worker
    # process takes a second or more to start). The model drains on the current workers
    # until then. >= 0; 0 = at once.
    scale_delay_s: float = Field(default=3.0, ge=0, le=600)
    # Prepared workers a standby keeps for each home it stands by for: booted (imports,
    # Redis and PostgreSQL connections) but idle and holding nothing, even after a
    # promotion, until a scale order starts them; a scale-up within this many skips the
    # process boot (`capacity.scale_delay`). Each costs a worker's memory, no CPU. >= 0.
    prepared_workers: int = Field(default=0, ge=0, le=256)
    # The clients' retry backoff cap, seconds (the SDK's `RetryPolicy.backoff_cap_s`,
    # default 1): an outage's submissions reach the standby at each client's next retry
    # after the route moved, 7/18 of the cap later on average (`capacity.client_return`).
    # 0 = clients that resend at once. >= 0.
    client_backoff_cap_s: float = Field(default=1.0, ge=0, le=600)


class Topology(_Model):
    """The whole deployment as every process sees it."""

    version: Literal[1] = 1
    regions: list[Region] = Field(min_length=1)
    pins: list[PinRule] = []
    durability_default: Literal["LOCAL", "REGION", "GLOBAL"] = "REGION"
    etcd_prefix: str = Field(default="/homeport", pattern=r"^/[A-Za-z0-9_/-]*$")
    toxiproxy: Toxiproxy | None = None
    links: list[Link] = []
    deployment: Deployment | None = None  # only `homeport deploy render` needs it
    # Who each role is to each server and where its secrets live (`core.security`);
    # None: no credentials at all, which production roles refuse without --insecure.
    security: SecurityConfig | None = None
    # None = the defaults of `CapacityPolicy` (read it through `capacity_policy`); kept
    # optional so that a topology written back (`to_yaml`, rendered deployments) carries
    # the block only when it was set.
    capacity: CapacityPolicy | None = None

    @property
    def capacity_policy(self) -> CapacityPolicy:
        return self.capacity or CapacityPolicy()

    @model_validator(mode="after")
    def _consistent(self) -> Topology:
        _check_regions(self)
        _check_ports(self)
        check_deployment(self)
        return self

    def region(self, name: str) -> Region:
        for region in self.regions:
            if region.name == name:
                return region
        raise TopologyError("region", name, f"no such region; known: {self.region_names()}")

    def region_names(self) -> list[str]:
        return [r.name for r in self.regions]

    def link(self, name: str) -> Link | None:
        for link in self.links:
            if link.name == name:
                return link
        return None

    def dial(self, src: str, dst: str, service: str, address: str) -> str:
        """The address `src` must connect to for `address`, a `service` of region `dst`:
        the proxy's listen address when a link `src->dst:service` exists, else `address`."""
        link = self.link(f"{src}->{dst}:{service}")
        return link.listen if link is not None else address

    def home_of(self, key: str) -> str | None:
        """The region a pin rule places `key` in, or None when hash placement applies."""
        for pin in self.pins:
            if fnmatch.fnmatchcase(key, pin.pattern):
                return pin.region
        return None

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", exclude_none=True), sort_keys=False)


def _check_regions(topo: Topology) -> None:
    names = topo.region_names()
    for name, count in Counter(names).items():
        if count > 1:
            raise TopologyError("regions.name", name, f"used {count} times; names must be unique")
    for i, region in enumerate(topo.regions):
        _check_standby(i, region, names)
    for i, pin in enumerate(topo.pins):
        if pin.region not in names:
            raise TopologyError(f"pins[{i}].region", pin.region, f"not a region; known: {names}")
    for i, link in enumerate(topo.links):
        match = _LINK.match(link.name)
        ends = (match["src"], match["dst"]) if match is not None else ()
        for end in ends:
            if end not in names and end not in ("client", "peers"):
                raise TopologyError(
                    f"links[{i}].name", link.name, f"{end!r} is not a region, 'client' or 'peers'"
                )


def _check_standby(i: int, region: Region, names: list[str]) -> None:
    field = f"regions[{i}].standby"
    if region.standby is None:
        if len(names) > 1:
            others = [n for n in names if n != region.name]
            raise TopologyError(
                field,
                None,
                f"region {region.name!r} has no standby; every region of a multi-region "
                f"topology needs one, choose from {others}",
            )
    elif region.standby not in names:
        raise TopologyError(
            field, region.standby, f"not a region of this topology; choose one of {names}"
        )
    elif region.standby == region.name:
        raise TopologyError(field, region.standby, "a region cannot stand by itself")


def _listen_addresses(topo: Topology) -> list[tuple[str, str]]:
    """(owner, address) of every port something listens on, PostgreSQL excluded: one
    server may hold every region's database."""
    out: list[tuple[str, str]] = []
    for i, region in enumerate(topo.regions):
        for address in region.redis.addresses():
            out.append((f"regions[{i}].redis", address))
        for field in ("etcd", "etcd_peer", "gateway", "admin"):
            value = getattr(region, field)
            if value is not None:
                out.append((f"regions[{i}].{field}", value))
    for i, link in enumerate(topo.links):
        out.append((f"links[{i}].listen", link.listen))
    return out


def _check_ports(topo: Topology) -> None:
    """One listener per host and port. Loopback clusters share one host, so there this is
    one listener per port; a deployment's hosts are DNS names and may share a port."""
    seen: dict[tuple[str, int], str] = {}
    for owner, address in _listen_addresses(topo):
        host, port = split_address(address)
        if (host, port) in seen:
            raise TopologyError(
                owner,
                address,
                f"port {port} is already used by {seen[host, port]}; give each listener "
                "its own port",
            )
        seen[host, port] = owner


def parse_topology(data: Any, source: str = "topology") -> Topology:
    """Validate `data` (parsed YAML) into a Topology, or raise TopologyError naming the
    first bad field and value."""
    if not isinstance(data, dict):
        raise TopologyError("<root>", type(data).__name__, f"{source} must be a YAML mapping")
    try:
        return Topology.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in err["loc"]).replace(
            ".[", "["
        )
        raise TopologyError(field or "<root>", err.get("input"), err["msg"]) from None


def load_topology(path: Path) -> Topology:
    return parse_topology(read_yaml(path, TopologyError, "<file>"), str(path))


def topology_file_option(
    help_text: str, *, required: bool = False, exists: bool = False
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The `--topology FILE` option of every command that reads a topology (passed as
    `topology_path`); `exists`: click refuses a path that does not exist."""
    return click.option(
        "--topology",
        "topology_path",
        type=click.Path(exists=exists, dir_okay=False, path_type=Path),
        required=required,
        default=None,
        help=help_text,
    )
