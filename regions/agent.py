"""The region agent: one process per region that runs the region's share of the control
plane and keeps the right workers running.

- a health `Observer` probing every other region;
- a failover `Controller` candidate (one agent of the deployment wins the election);
- a `MirrorLagProbe` exporting the lag of every mirror as seen from here;
- a supervisor: for every home region the routing table says this region serves, it
  keeps `workers` worker processes (`homeport worker --manager ...`) pointed at the copy
  of that home's data the route names. After a failover, the standby's agent starts
  workers for the failed home on its promoted mirror; after a failback it stops them.
  A worker that exits on its own is restarted.

Workers run in the agent's process group, so stopping (or killing) the agent's group
stops them too: "every process of region A" is the agent's group plus A's servers.
Task records of a home are written to that home's database, wherever its workers run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from homeport.core.admin import AdminServer
from homeport.core.metrics import Metrics
from homeport.regions.control import ControlPlane
from homeport.regions.controller import CapacityCheck, Controller
from homeport.regions.health import Observer
from homeport.regions.metrics import RegionsMetrics
from homeport.regions.mirror import MirrorLagProbe
from homeport.regions.routing import Route, store_address
from homeport.regions.topology import Topology
from prometheus_client import CollectorRegistry, Counter

log = logging.getLogger(__name__)


@dataclass
class _Workers:
    """The worker processes run for one served home, and the command they were run with."""

    argv: list[str]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)


@dataclass
class AgentSettings:
    app: str
    workers: int = 1  # worker processes per served home region; >= 1
    confirm_s: float = 3.0  # seconds a quorum must agree a region is down
    interval_s: float = 0.25  # seconds between supervisor passes
    log_dir: Path = Path(".")
    admin_port: int = 0  # 0 = any free port, -1 = no admin server
    worker_args: tuple[str, ...] = ()  # extra arguments for `homeport worker`
    metrics_targets_dir: str = ""  # announce /metrics here (core.targets); "" = do not


class Agent:
    def __init__(
        self,
        topology: Topology,
        region: str,
        settings: AgentSettings,
        capacity_check: CapacityCheck | None = None,
    ) -> None:
        self.topology = topology
        self.region = region
        self.settings = settings
        self.capacity_check = capacity_check
        self.registry = CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self.rm = RegionsMetrics(self.registry)
        self.rm.start(topology)
        self.restarts = Counter(
            "homeport_agent_worker_restarts",
            "Worker processes the agent restarted after they exited",
            ("home",),
            registry=self.registry,
        )
        self._workers: dict[str, _Workers] = {}
        self._stop = asyncio.Event()
        self.controller: Controller | None = None
        self._fenced = False
        self._was_leased = False

    # --- worker supervision -------------------------------------------------------------

    def _argv(self, route: Route) -> list[str]:
        home = self.topology.region(route.home)
        host, port = store_address(self.topology, route, self.region)
        dsn = home.postgres
        server = dsn.split("@", 1)[1].split("/", 1)[0]
        dsn = dsn.replace(server, self.topology.dial(self.region, home.name, "postgres", server))
        return [
            sys.executable, "-m", "homeport", "worker",
            "--app", self.settings.app,
            "--region", home.name,
            "--partitions", str(home.partitions),
            "--redis-url", f"redis://{host}:{port}/0",
            "--redis-cluster" if home.redis.mode == "cluster" else "--redis-single",
            "--pg-dsn", dsn,
            "--manager",
            "--admin-port", "0",
            *self.settings.worker_args,
        ]  # fmt: skip

    def _spawn(self, home: str, argv: list[str], index: int) -> subprocess.Popen[bytes]:
        log_path = self.settings.log_dir / f"worker-{self.region}-{home}-{index}.log"
        with log_path.open("ab") as out:
            return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)

    async def _stop_workers(self, home: str, grace: float = 10.0) -> None:
        group = self._workers.pop(home, None)
        if group is None:
            return
        for proc in group.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while any(p.poll() is None for p in group.procs) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for proc in group.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    async def supervise_once(self, routes: dict[str, Route], fenced: bool = False) -> None:
        """Converge the worker processes on `routes`. `fenced`: this region has lost its
        etcd lease (cut off from the quorum); it may be failed over at any moment, so it
        stops consuming, like its gateways stop writing."""
        wanted = {
            home: self._argv(route)
            for home, route in routes.items()
            if route.serving == self.region and not fenced
        }
        for home in list(self._workers):
            if home not in wanted or self._workers[home].argv != wanted[home]:
                log.warning("agent %s: stopping workers of %s", self.region, home)
                await self._stop_workers(home)
        for home, argv in wanted.items():
            group = self._workers.get(home)
            if group is None:
                log.warning("agent %s: starting workers of %s", self.region, home)
                group = self._workers[home] = _Workers(argv)
                group.procs = [self._spawn(home, argv, i) for i in range(self.settings.workers)]
                continue
            for i, proc in enumerate(group.procs):
                if proc.poll() is not None:
                    self.restarts.labels(home).inc()
                    group.procs[i] = self._spawn(home, argv, i)

    def status(self) -> dict[str, Any]:
        return {
            "role": "agent",
            "region": self.region,
            "controller_leader": bool(self.controller and self.controller.is_leader),
            "serving": {
                home: [p.pid for p in group.procs if p.poll() is None]
                for home, group in self._workers.items()
            },
        }

    # --- main ---------------------------------------------------------------------------

    async def run(self) -> None:
        cp = await ControlPlane.open(self.topology, self.region)
        await cp.routing.bootstrap(self.topology)
        observer = Observer(self.topology, self.region, cp.etcd, self.metrics, self.rm)
        probe = MirrorLagProbe(self.topology, self.region, self.metrics, self.rm)
        self.controller = Controller(
            cp, f"agent-{self.region}-{os.getpid()}", self.metrics, self.rm,
            confirm_s=self.settings.confirm_s, capacity_check=self.capacity_check,
        )  # fmt: skip
        loops = [observer, probe, self.controller]
        admin = None
        if self.settings.admin_port >= 0:
            admin = AdminServer(
                self.metrics, status=self.status, healthy=lambda: True,
                ready=lambda: bool(self._workers), port=self.settings.admin_port,
                targets_dir=self.settings.metrics_targets_dir, job="agent",
                labels={"site": self.region},
            )  # fmt: skip
            port = await admin.start()
            log.warning("agent %s: admin on 127.0.0.1:%d", self.region, port)
        for loop in loops:
            loop.start()
        routes: dict[str, Route] = {}
        try:
            while not self._stop.is_set():
                try:
                    routes = dict((await cp.routing.load()).routes)
                    self.rm.observe_routes(routes)
                except Exception as exc:  # noqa: BLE001 - keep serving what we served
                    self.metrics.loop_errors.labels("agent-routes").inc()
                    log.debug("agent %s: routing table unreadable: %s", self.region, exc)
                fenced = observer.lease.lease_id is not None and not observer.lease.valid
                fenced = fenced or (self._was_leased and observer.lease.lease_id is None)
                self._was_leased = self._was_leased or observer.lease.valid
                if fenced != self._fenced:
                    log.warning(
                        "agent %s: %s",
                        self.region,
                        "fenced: etcd lease lost, stopping workers"
                        if fenced
                        else "lease back: unfenced",
                    )
                    self._fenced = fenced
                await self.supervise_once(routes, fenced)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.settings.interval_s)
        finally:
            for home in list(self._workers):
                await self._stop_workers(home)
            for loop in reversed(loops):
                with contextlib.suppress(Exception):
                    await loop.stop()
            if admin is not None:
                await admin.stop()
            await cp.close()

    def stop(self) -> None:
        self._stop.set()

    def stop_on_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
