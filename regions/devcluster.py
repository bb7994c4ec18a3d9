"""The local multi-region cluster: real Redis, PostgreSQL, etcd and Toxiproxy processes on
loopback, started by `homeport dev up` and by the test fixtures alike.

Per region it runs a Redis primary, an in-region replica and the region's cross-region
mirror (a replica of the primary that stands for the copy held in the standby region and
replicates through the proxy `<standby>-><region>:redis`), one etcd member, and a
database on the shared PostgreSQL server. One Toxiproxy server carries every link that
crosses regions or comes from clients (see `regions.topology` for the link names).

State lives in one directory (default `.homeport/`): `topology.yaml`, `processes.json`
and one log per process under `logs/`.
"""

from __future__ import annotations

__all__ = [
    "REGION_NAMES",
    "ClusterSpec",
    "ComponentStatus",
    "DevCluster",
    "RegionSpec",
    "database_name",
]

import asyncio
import dataclasses
import json
import random
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Coroutine
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from homeport.core.security import Identity, SecurityConfig
from homeport.regions import devstatus, prometheus, security, servers
from homeport.regions.devplan import (
    HOST,
    REGION_NAMES,
    ClusterSpec,
    Plan,
    RegionSpec,
    database_name,
    plan_cluster,
)
from homeport.regions.devstatus import ComponentStatus
from homeport.regions.errors import ClusterStateError, LaunchError
from homeport.regions.ports import PortPicker
from homeport.regions.processes import (
    ProcessRecord,
    ProcessTable,
    is_alive,
    spawn,
    stop,
    wait_ready,
)
from homeport.regions.servers import Binaries
from homeport.regions.topology import (
    Region,
    Topology,
    load_topology,
    split_address,
)

READY_TIMEOUT = 30.0  # seconds any one server may take to become ready
PORT_RACE_ATTEMPTS = 3  # fresh port plans tried when a picked port is taken meanwhile
STATE_MARKER = ".homeport-dev"  # marks a state directory `up` made (and may empty again)


class DevCluster:
    """One local cluster, identified by its state directory."""

    def __init__(self, state_dir: Path, binaries: Binaries | None = None) -> None:
        self.state_dir = state_dir.resolve()
        self.binaries = binaries or Binaries()
        self.logs = self.state_dir / "logs"
        self.table_path = self.state_dir / "processes.json"
        self.topology_path = self.state_dir / "topology.yaml"
        # Every /metrics endpoint announces itself here (`core.targets`).
        self.targets_dir = self.state_dir / "targets"
        self._handles: dict[int, subprocess.Popen[bytes]] = {}
        # The cluster's security section while `up` runs (probes log in as operator).
        self._security: SecurityConfig | None = None

    def _auth(self) -> dict[str, Any]:
        return Identity.of(self._security, "operator").redis_kwargs()

    # ---- queries -----------------------------------------------------------------------

    @property
    def topology(self) -> Topology:
        if not self.topology_path.exists():
            raise ClusterStateError(
                f"no topology at {self.topology_path}; start a cluster with `homeport dev up`"
            )
        return load_topology(self.topology_path)

    def records(self) -> list[ProcessRecord]:
        return ProcessTable.load(self.table_path).records

    def is_up(self) -> bool:
        if not self.table_path.exists():
            return False
        return any(is_alive(r) for r in self.records())

    def status(self) -> list[ComponentStatus]:
        """Every process of the cluster and every worker of its agents, with a health
        probe each (`regions.devstatus`)."""
        return devstatus.status(self)

    # ---- up / down ---------------------------------------------------------------------

    def up(
        self, spec: ClusterSpec, progress: Callable[[str], None] = lambda _msg: None
    ) -> Topology:
        """Start everything `spec` asks for and return the topology it wrote.

        On any failure every process this call started is stopped before the error
        propagates, so a failed `up` leaves nothing running.
        """
        if self.is_up():
            raise ClusterStateError(
                f"a local cluster is already running from {self.state_dir}; "
                "stop it with `homeport dev down` first"
            )
        for attempt in range(PORT_RACE_ATTEMPTS):
            try:
                return self._up_once(spec, progress)
            except LaunchError as exc:
                # Ports are checked free when picked, but another program may bind one
                # before our server does; that race is worth a fresh plan, nothing else is.
                if "address already in use" not in str(exc) or attempt + 1 == PORT_RACE_ATTEMPTS:
                    raise
                progress(f"{exc.component}: port taken meanwhile; planning new ports")
                spec = dataclasses.replace(spec, seed=secrets.randbelow(2**31))
        raise AssertionError("unreachable")

    def check_state_dir(self) -> None:
        """Refuse a state directory that holds files `up` did not put there: `up` empties
        it, and `--state-dir .` must not wipe a project."""
        d = self.state_dir
        if d.exists() and not d.is_dir():
            raise ClusterStateError(f"--state-dir {d} is a file; give a directory")
        if d.exists() and any(d.iterdir()) and not (d / STATE_MARKER).exists():
            raise ClusterStateError(
                f"--state-dir {d} is not empty and was not made by `homeport dev up` "
                f"(no {STATE_MARKER} in it); `up` empties its state directory, so give a "
                "new or empty one"
            )

    def _up_once(self, spec: ClusterSpec, progress: Callable[[str], None]) -> Topology:
        self.check_state_dir()
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir)
        self.logs.mkdir(parents=True)
        (self.state_dir / STATE_MARKER).write_text("made by `homeport dev up`; emptied by it\n")
        table = ProcessTable(self.table_path, handles=self._handles)
        table.save()
        picker = PortPicker(random.Random(spec.seed))
        sec = security.cluster_security(self.state_dir, spec.insecure, spec.shared_security)
        plan = plan_cluster(spec, picker, sec)
        try:
            self._start(plan, spec, table, progress)
            self.topology_path.write_text(plan.topology.to_yaml())
            prometheus.write_static_targets(
                self.targets_dir, "etcd", [f"{HOST}:{m}" for _, _, m in plan.etcd_ports.values()]
            )
            if spec.services is not None:
                self._start_services(plan.topology, spec, table, progress)
            if spec.with_prometheus:
                progress("prometheus: rules and file discovery")
                prometheus.start(table, self.binaries.prometheus, self.state_dir, picker.take())
        except BaseException:
            progress("start-up failed: stopping what was started")
            stop(table.records, handles=self._handles)
            raise
        return plan.topology

    def restart(self, names: list[str], hold: Collection[str] = ()) -> list[ProcessRecord]:
        """Start stopped processes again, each with its recorded command line and log (a
        region coming back after a loss). A single-mode Redis restarts empty (it keeps no
        files); a Redis Cluster node restarts with its data (its AOF). `hold`: cluster
        nodes to restart *held*: with their data but a new cluster identity, alone and
        out of their cluster until a failback has read their orphans
        (regions.clusterorphans)."""
        table = ProcessTable.load(self.table_path)
        table.handles = self._handles
        by_name = {r.name: r for r in table.records}
        started = []
        for name in names:
            old = by_name[name]
            if is_alive(old):
                continue
            if name in hold:
                servers.hold_cluster_node(old.argv)
            table.records.remove(old)
            stop([old], handles=self._handles)  # reaps it: a killed child left unwaited warns
            started.append(
                spawn(
                    table, old.name, old.kind, old.argv, Path(old.log), region=old.region,
                    address=old.address, user=old.user, stop_signal=old.stop_signal,
                )
            )  # fmt: skip
        return started

    def down(self, progress: Callable[[str], None] = lambda _msg: None) -> list[ProcessRecord]:
        """Stop every process `up` recorded, newest first; returns those that were running."""
        table = ProcessTable.load(self.table_path)
        progress(f"stopping {len(table.alive())} processes")
        stopped = stop(list(reversed(table.records)), handles=self._handles)
        self.table_path.unlink()
        return stopped

    # ---- the start sequence ------------------------------------------------------------

    def _start(
        self,
        plan: Plan,
        spec: ClusterSpec,
        table: ProcessTable,
        progress: Callable[[str], None],
    ) -> None:
        topo = plan.topology
        self._security = topo.security
        started = time.monotonic()
        progress(f"toxiproxy: {len(topo.links)} proxies")
        tox = self._start_toxiproxy(plan, spec, table)
        progress("postgres: initdb")
        pg_dir = self.state_dir / "postgres" / "data"
        servers.pg_initdb(self.binaries.pg_bindir, pg_dir, self.logs / "postgres.log")
        sec = topo.security or SecurityConfig(insecure=True)
        security.write_redis_conf(sec, self.state_dir / "secrets")
        (pg_dir / "pg_hba.conf").write_text(security.pg_hba(sec))
        pg_tls = security.pg_tls_files(sec, pg_dir, servers.pg_user())
        pg = spawn(
            table,
            "postgres",
            "postgres",
            servers.pg_argv(self.binaries.pg_bindir, pg_dir, plan.pg_port, pg_tls),
            self.logs / "postgres.log",
            address=f"{HOST}:{plan.pg_port}",
            user=servers.pg_user(),
            stop_signal=signal.SIGINT,
        )
        progress("redis and etcd: starting")
        redis_waits = [w for r in topo.regions for w in self._start_redis(r, topo, table)]
        etcd = [self._start_etcd(region, plan, table) for region in topo.regions]
        wait_ready(tox, lambda: servers.toxiproxy_probe(plan.toxiproxy_api, len(topo.links)), 10)
        wait_ready(
            pg, lambda: servers.pg_probe(self.binaries.pg_bindir, plan.pg_port), READY_TIMEOUT
        )
        servers.pg_create_databases(
            self.binaries.pg_bindir,
            plan.pg_port,
            [database_name(r.name) for r in topo.regions],
            self.logs / "postgres.log",
            socket_dir=pg_dir.parent,
            setup="" if sec.insecure else security.pg_roles_sql(sec),
            owner=None if sec.insecure else security.pg_owner(sec),
        )
        progress("postgres: migrations and grants")
        _run_async(security.prepare_databases(topo))
        for record, probe in redis_waits:
            wait_ready(record, probe, READY_TIMEOUT)
        for region in topo.regions:
            if region.redis.mode == "cluster":
                progress(f"{region.name}: creating the Redis Cluster")
                self._form_cluster(region, table)
        etcd_tls = Identity.of(topo.security, "operator").etcd_tls()
        for record, client_port in etcd:
            probe = partial(servers.etcd_probe, client_port, etcd_tls)
            wait_ready(record, probe, READY_TIMEOUT, "healthy")
        progress("etcd: users, roles and the routing table")
        _run_async(security.prepare_etcd(topo, self.state_dir))
        progress(f"all {len(table.records)} processes ready in {time.monotonic() - started:.1f}s")

    def _start_services(
        self,
        topo: Topology,
        spec: ClusterSpec,
        table: ProcessTable,
        progress: Callable[[str], None],
    ) -> None:
        """Per region a gateway (following the routing table in etcd) and an agent (health
        observer, controller candidate, mirror-lag probe, workers)."""
        homeport = [sys.executable, "-m", "homeport"]
        # Gateways, agents and the workers agents start announce their /metrics; in the
        # command line, so a process restarted from it (chaos) announces itself again.
        targets = ["--metrics-targets-dir", str(self.targets_dir)]
        gateways = []
        for region in topo.regions:
            progress(f"{region.name}: gateway and agent")
            gateways.append(
                spawn(
                    table, f"gateway-{region.name}", "gateway",
                    [*homeport, "gateway", "--topology", str(self.topology_path),
                     "--region", region.name, "--routing", "etcd", *targets],
                    self.logs / f"gateway-{region.name}.log",
                    region=region.name, address=region.gateway or "",
                )
            )  # fmt: skip
        for region in topo.regions:
            spawn(
                table, f"agent-{region.name}", "agent",
                [*homeport, "agent", "--topology", str(self.topology_path),
                 "--region", region.name, "--app", spec.services or "",
                 "--workers", str(spec.workers), "--log-dir", str(self.logs),
                 "--admin-port", "0", *targets],
                self.logs / f"agent-{region.name}.log", region=region.name,
            )  # fmt: skip
        for record in gateways:
            port = split_address(record.address)[1]
            # A gateway imports grpc, protobuf and the engine: slow on a loaded machine.
            wait_ready(record, partial(servers.tcp_probe, port), 3 * READY_TIMEOUT, "serving")

    def prometheus_url(self) -> str | None:
        """The local Prometheus server's URL, when `up` started one."""
        found = [r for r in self.records() if r.kind == "prometheus"]
        return f"http://{found[0].address}" if found else None

    def _start_toxiproxy(self, plan: Plan, spec: ClusterSpec, table: ProcessTable) -> ProcessRecord:
        config = self.state_dir / "toxiproxy.json"
        config.write_text(
            json.dumps(
                [
                    {"name": ln.name, "listen": ln.listen, "upstream": ln.upstream, "enabled": True}
                    for ln in plan.topology.links
                ],
                indent=1,
            )
        )
        return spawn(
            table,
            "toxiproxy",
            "toxiproxy",
            servers.toxiproxy_argv(self.binaries.toxiproxy, plan.toxiproxy_api, config, spec.seed),
            self.logs / "toxiproxy.log",
            address=f"{HOST}:{plan.toxiproxy_api}",
        )

    def _redis(
        self,
        table: ProcessTable,
        region: Region,
        role: str,
        address: str,
        replica_of: str | None = None,
        cluster: bool = False,
    ) -> ProcessRecord:
        """Start one Redis node of `region`'s data. A mirror node runs in (and is
        recorded as a process of) the standby region, which hosts it."""
        port = split_address(address)[1]
        name = f"redis-{region.name}-{role}"
        data = self.state_dir / "redis" / name
        data.mkdir(parents=True, exist_ok=True)
        sec = self._security
        tls = sec is not None and not sec.insecure and sec.tls is not None and sec.tls.redis
        argv = servers.redis_argv(
            self.binaries.redis_server, port, data, replica_of, cluster,
            conf=self.state_dir / "secrets" / "redis.conf" if sec and not sec.insecure else None,
            tls=tls,
        )  # fmt: skip
        host = (region.standby or region.name) if role.startswith("mirror") else region.name
        return spawn(
            table, name, "redis", argv, self.logs / f"{name}.log", region=host, address=address
        )

    def _start_redis(
        self, region: Region, topo: Topology, table: ProcessTable
    ) -> list[tuple[ProcessRecord, Callable[[], bool]]]:
        r = region.redis
        waits: list[tuple[ProcessRecord, Callable[[], bool]]] = []
        if r.mode == "single" and r.primary is not None:
            primary = self._redis(table, region, "primary", r.primary)
            waits.append((primary, _redis_probe(r.primary, auth=self._auth())))
            for i, replica in enumerate(r.replicas):
                rec = self._redis(table, region, f"replica{i}", replica, replica_of=r.primary)
                waits.append((rec, _redis_probe(replica, replica=True, auth=self._auth())))
            if r.mirror is not None:
                # The mirror lives in the standby region, so it reaches the primary through
                # the cross-region proxy: cutting that link stalls its replication.
                upstream = topo.dial(region.standby or "", region.name, "redis", r.primary)
                rec = self._redis(table, region, "mirror", r.mirror, replica_of=upstream)
                waits.append((rec, _redis_probe(r.mirror, replica=True, auth=self._auth())))
                for i, address in enumerate(r.mirror_replicas):
                    rec = self._redis(
                        table, region, f"mirror-replica{i}", address, replica_of=r.mirror
                    )
                    waits.append((rec, _redis_probe(address, replica=True, auth=self._auth())))
            if r.spare is not None:  # empty until re-protection lends it (regions.spares)
                waits.append(
                    (
                        self._redis(table, region, "spare", r.spare),
                        _redis_probe(r.spare, auth=self._auth()),
                    )
                )
            return waits
        for role, nodes in (("node", r.nodes), ("replica", r.replicas), ("mirror", r.mirrors)):
            for i, address in enumerate(nodes):
                rec = self._redis(table, region, f"{role}{i}", address, cluster=True)
                waits.append((rec, _redis_probe(address, auth=self._auth())))
        return waits

    def _form_cluster(self, region: Region, table: ProcessTable) -> None:
        r = region.redis
        log = self.logs / f"redis-{region.name}-cluster.log"
        servers.create_redis_cluster(
            self.binaries.redis_cli,
            r.nodes,
            [[a, b] for a, b in zip(r.replicas, r.mirrors, strict=True)],
            log,
            Identity.of(self._security, "operator").redis_cli_args(),
        )
        by_address = {rec.address: rec for rec in table.records}
        for address in r.nodes:
            wait_ready(
                by_address[address],
                _redis_probe(address, cluster=True, auth=self._auth()),
                READY_TIMEOUT,
                "in cluster",
            )
        for address in [*r.replicas, *r.mirrors]:
            wait_ready(
                by_address[address],
                _redis_probe(address, replica=True, auth=self._auth()),
                READY_TIMEOUT,
                "in sync",
            )

    def _start_etcd(
        self, region: Region, plan: Plan, table: ProcessTable
    ) -> tuple[ProcessRecord, int]:
        topo = plan.topology
        client_scheme, scheme, extra = security.etcd_flags(topo.security, self.state_dir)
        members = ",".join(
            f"{r.name}={scheme}://{_link_listen(topo, f'peers->{r.name}:etcd-peer')}"
            for r in topo.regions
        )
        client, peer, metrics = plan.etcd_ports[region.name]
        name = f"etcd-{region.name}"
        argv = servers.etcd_argv(
            self.binaries.etcd,
            region.name,
            self.state_dir / "etcd" / region.name,
            client,
            peer,
            _link_listen(topo, f"peers->{region.name}:etcd-peer"),
            members,
            f"homeport-{plan.topology.etcd_prefix.strip('/')}",
            peer_scheme=scheme,
            extra=extra,
            client_scheme=client_scheme,
            metrics_port=metrics,
        )
        record = spawn(
            table,
            name,
            "etcd",
            argv,
            self.logs / f"{name}.log",
            region=region.name,
            address=region.etcd,
        )
        return record, client


def _run_async(coro: Coroutine[Any, Any, None]) -> None:
    """Run `coro` to completion from this synchronous code, also when the caller is
    itself inside an event loop (a game day starts its cluster from one): on a thread
    with a loop of its own."""
    with ThreadPoolExecutor(1, thread_name_prefix="devcluster") as pool:
        pool.submit(asyncio.run, coro).result()


def _link_listen(topo: Topology, name: str) -> str:
    link = topo.link(name)
    if link is None:
        raise LaunchError("toxiproxy", f"the plan has no link {name!r}")
    return link.listen


def _redis_probe(
    address: str, replica: bool = False, cluster: bool = False, auth: dict[str, Any] | None = None
) -> Callable[[], bool]:
    port = split_address(address)[1]
    return lambda: servers.redis_probe(port, replica=replica, cluster=cluster, auth=auth)
