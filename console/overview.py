"""Rows of the Regions and Queues pages, built from what the gateways, the routing table
and the health votes say. Pure functions: no I/O here, so each rule is easy to read."""

from __future__ import annotations

from dataclasses import dataclass

from homeport.console.control import HealthVotes
from homeport.console.gateways import StatusAnswer
from homeport.console.sampler import QueueSampler, Rates
from homeport.regions.routing import Route
from homeport.regions.topology import Topology, split_address
from homeport.router.views import PartitionView, ReplicaView


@dataclass(frozen=True)
class HomeRow:
    home: str
    route: Route | None
    mirror: str  # "12 B behind (online)", or why it is not known
    global_ok: bool | None  # None: not measurable now
    global_note: str
    gateway: str  # the serving region's gateway: "ok (4 ms)" or the error text
    gateway_ok: bool
    agent: str
    agent_ok: bool
    workers: str
    workers_ok: bool


def _port(address: str) -> int:
    return split_address(address)[1]


def _mirror_replica(
    topology: Topology, home: str, replicas: tuple[ReplicaView, ...]
) -> ReplicaView | None:
    mirror = topology.region(home).redis.mirror
    if mirror is None:
        return None
    return next((r for r in replicas if _port(r.address) == _port(mirror)), None)


def _replication(
    topology: Topology, home: str, route: Route | None, own: StatusAnswer | None
) -> tuple[str, bool | None, str]:
    region = topology.region(home)
    if region.redis.mode != "single":
        return "Redis Cluster: see the cluster's replicas", None, "not measured in cluster mode"
    if route is not None and route.copy != "primary":
        return "served from its mirror", None, f"served from the mirror in {route.serving}"
    if own is None or own.view is None:
        why = own.error if own is not None else "no gateway in this region"
        return f"unknown ({why})", None, "unknown: the home's gateway did not answer"
    replicas = own.view.replicas
    mirror = _mirror_replica(topology, home, replicas)
    text = "no mirror connected"
    if mirror is not None:
        text = f"{mirror.lag_bytes} B behind ({mirror.state})"
    online = sum(1 for r in replicas if r.state == "online")
    needed = region.redis.replicas_for_global
    ok = online >= needed
    note = f"{online} of {needed} replicas online"
    return text, ok, note


def _agent(votes: HealthVotes | None) -> tuple[str, bool]:
    if votes is None or votes.agent_seen_s is None:
        return "silent (never reported)", False
    ok = votes.agent_alive
    text = f"{'alive' if ok else 'silent'}, reported {votes.agent_seen_s:.0f} s ago"
    peers = len(votes.reached_by) + len(votes.unreached_by)
    if peers:
        text += f"; reached by {len(votes.reached_by)} of {peers} peers"
    return text, ok


def _workers(home: str, gw: StatusAnswer | None) -> tuple[str, bool]:
    """Partitions of `home` whose lease a worker holds, as the serving gateway reports."""
    views = gw.view.partitions if gw is not None and gw.view is not None else ()
    parts = [p for p in views if p.partition.startswith(home + "/")]
    if not parts:
        return "unknown (no partition status)", False
    owned = [p for p in parts if p.worker]
    workers = len({p.worker for p in owned})
    text = f"{len(owned)} of {len(parts)} partitions owned by {workers} worker(s)"
    return text, len(owned) == len(parts)


def _gateway(gw: StatusAnswer | None) -> tuple[str, bool]:
    if gw is None:
        return "no gateway in the topology", False
    if gw.view is None:
        return gw.error, False
    return f"ok ({gw.millis:.0f} ms)", True


def home_rows(
    topology: Topology,
    routes: dict[str, Route],
    answers: dict[str, StatusAnswer],
    health: dict[str, HealthVotes],
) -> list[HomeRow]:
    rows = []
    for region in topology.regions:
        home = region.name
        route = routes.get(home)
        gw = answers.get(route.serving if route is not None else home)
        mirror, global_ok, global_note = _replication(topology, home, route, answers.get(home))
        rows.append(
            HomeRow(
                home,
                route,
                mirror,
                global_ok,
                global_note,
                *_gateway(gw),
                *_agent(health.get(home)),
                *_workers(home, gw),
            )  # fmt: skip
        )
    return rows


@dataclass(frozen=True)
class PartitionRow:
    view: PartitionView
    served_by: str
    rates: Rates | None
    backlog: list[int]


@dataclass(frozen=True)
class QueueHome:
    home: str
    partitions: list[PartitionRow]
    backlog: list[int]
    rates: list[Rates]

    @property
    def ready(self) -> int:
        return sum(p.view.ready for p in self.partitions)

    @property
    def running(self) -> int:
        return sum(p.view.pending for p in self.partitions)

    @property
    def delayed(self) -> int:
        return sum(p.view.delayed for p in self.partitions)

    @property
    def dead(self) -> int:
        return sum(p.view.dead for p in self.partitions)

    @property
    def oldest_ready_s(self) -> float:
        return max((p.view.oldest_ready_age_ms for p in self.partitions), default=0) / 1000

    @property
    def now(self) -> Rates | None:
        return self.rates[-1] if self.rates else None


def queue_homes(
    topology: Topology, answers: dict[str, StatusAnswer], sampler: QueueSampler
) -> list[QueueHome]:
    seen: dict[str, PartitionRow] = {}
    for answer in answers.values():
        for p in answer.view.partitions if answer.view else ():
            backlog, rates = sampler.series([p.partition])
            seen[p.partition] = PartitionRow(
                p, answer.region, rates[-1] if rates else None, backlog
            )
    out = []
    for region in topology.regions:
        rows = sorted(
            (r for name, r in seen.items() if name.startswith(region.name + "/")),
            key=lambda r: int(r.view.partition.rpartition("/")[2]),
        )
        backlog, rates = sampler.series([r.view.partition for r in rows])
        out.append(QueueHome(region.name, rows, backlog, rates))
    return out
