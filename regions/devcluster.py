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
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import requests
from homeport.core.security import Identity, SecurityConfig
from homeport.regions import prometheus, security, servers, spares
from homeport.regions.errors import ClusterStateError, LaunchError
from homeport.regions.ports import PortPicker
from homeport.regions.processes import (
    ProcessRecord,
    ProcessTable,
    is_alive,
    pid_alive,
    spawn,
    stop,
    wait_ready,
)
from homeport.regions.servers import Binaries
from homeport.regions.topology import (
    Link,
    Region,
    RegionRedis,
    Topology,
    Toxiproxy,
    load_topology,
    split_address,
)

REGION_NAMES = ("us-east", "eu-west", "ap-south", "sa-east", "af-south", "me-central", "ca-west")
HOST = "127.0.0.1"
CLUSTER_BUS = 10000  # Redis Cluster nodes also listen on port + 10000
READY_TIMEOUT = 30.0  # seconds any one server may take to become ready
PORT_RACE_ATTEMPTS = 3  # fresh port plans tried when a picked port is taken meanwhile
RESTART_UNHEALTHY_S = 10.0  # a worker restarted this recently is reported unhealthy
STATE_MARKER = ".homeport-dev"  # marks a state directory `up` made (and may empty again)


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


def database_name(region: str) -> str:
    return "homeport_" + region.replace("-", "_")


@dataclass
class _Plan:
    """Ports and addresses chosen for one `up`, before anything starts."""

    topology: Topology
    pg_port: int
    toxiproxy_api: int
    # region -> (client, peer, metrics): /metrics and /health in plaintext, without
    # client certificates, for Prometheus (the client port may demand them).
    etcd_ports: dict[str, tuple[int, int, int]]


def _plan(spec: ClusterSpec, picker: PortPicker, security: SecurityConfig | None = None) -> _Plan:
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
    )
    return _Plan(topology, pg_port, tox_api, etcd_ports)


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
        try:
            operator = Identity.of(self.topology.security, "operator")
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
            for r in self.records()
        ]
        return rows + self.worker_status()

    def worker_status(self) -> list[ComponentStatus]:
        """The workers the agents run (from the table each agent publishes): a worker
        restarted in the last `RESTART_UNHEALTHY_S` seconds counts as unhealthy, so a
        crash-looping app shows in `dev status`."""
        rows = []
        now = time.time()
        for path in sorted(self.logs.glob("workers-*.json")):
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
        plan = _plan(spec, picker, sec)
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

    def restart(self, names: list[str]) -> list[ProcessRecord]:
        """Start stopped processes again, each with its recorded command line and log (a
        region coming back after a loss). Redis restarts empty: it keeps no files."""
        table = ProcessTable.load(self.table_path)
        table.handles = self._handles
        by_name = {r.name: r for r in table.records}
        started = []
        for name in names:
            old = by_name[name]
            if is_alive(old):
                continue
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
        plan: _Plan,
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

    def _start_toxiproxy(
        self, plan: _Plan, spec: ClusterSpec, table: ProcessTable
    ) -> ProcessRecord:
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
        self, region: Region, plan: _Plan, table: ProcessTable
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
