"""`homeport dev status`: every process of a local cluster with a health probe, and the
workers its agents run (from the table each agent publishes)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import requests
from homeport.core.security import Identity
from homeport.regions import servers
from homeport.regions.errors import ClusterStateError
from homeport.regions.processes import ProcessRecord, is_alive, pid_alive
from homeport.regions.servers import Binaries
from homeport.regions.topology import split_address

if TYPE_CHECKING:
    from homeport.regions.devcluster import DevCluster

RESTART_UNHEALTHY_S = 10.0  # a worker restarted this recently is reported unhealthy


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    kind: str
    region: str
    address: str
    pid: int
    running: bool
    healthy: bool
    log: str


def status(cluster: DevCluster) -> list[ComponentStatus]:
    """Every process of `cluster`, probed, then its agents' workers."""
    try:
        operator = Identity.of(cluster.topology.security, "operator")
    except ClusterStateError:
        operator = Identity(None)
    rows = [
        ComponentStatus(
            r.name,
            r.kind,
            r.region,
            r.address,
            r.pid,
            is_alive(r),
            _healthy(r, operator),
            r.log,
        )
        for r in cluster.records()
    ]
    return rows + worker_status(cluster)


def worker_status(cluster: DevCluster) -> list[ComponentStatus]:
    """The workers the agents run (from the table each agent publishes): a worker
    restarted in the last `RESTART_UNHEALTHY_S` seconds counts as unhealthy, so a
    crash-looping app shows in `dev status`."""
    rows = []
    now = time.time()
    for path in sorted(cluster.logs.glob("workers-*.json")):
        region = path.stem.removeprefix("workers-")
        try:
            table = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for w in table:
            alive = pid_alive(int(w["pid"]))
            restarting = w["restarts"] > 0 and now - w["started_at"] < RESTART_UNHEALTHY_S
            rows.append(
                ComponentStatus(
                    f"worker {w['id']}", "worker", region, f"home {w['home']}",
                    int(w["pid"]), alive, alive and not restarting, w["log"],
                )
            )  # fmt: skip
    return rows


def _healthy(record: ProcessRecord, operator: Identity) -> bool:
    if not is_alive(record):
        return False
    port = split_address(record.address)[1] if record.address else 0
    try:
        if record.kind == "redis":
            return servers.redis_probe(port, auth=operator.redis_kwargs())
        if record.kind == "etcd":
            return servers.etcd_probe(port, operator.etcd_tls())
        if record.kind == "postgres":
            return servers.pg_probe(Binaries().pg_bindir, port)
        if record.kind == "toxiproxy":
            return requests.get(f"http://{record.address}/version", timeout=1).ok
    except Exception:  # noqa: BLE001 - a failing probe means unhealthy, whatever the cause
        return False
    return True
