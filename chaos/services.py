"""The services of a game day: per region a gateway, and workers for every home region
the region serves, following the routing table in etcd.

This stands in for the launcher's region agent (`ClusterSpec(services=True)`) until it
lands: a gateway per region (`homeport gateway --routing etcd`), and per home region
`workers_per_region` workers placed where its route says it is served, reading the copy
the route names. When a route moves (a promotion, a failback), the workers of that home
are stopped and started again in the serving region, as the agent would do.

Every process leads its own process group and is known by a component name
(`gateway-<region>`, `worker-<home>-<i>`) and the region that hosts it now.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from chaos.errors import RunError
from regions.routing import Route, store_address
from regions.topology import Topology

HOMEPORT = [sys.executable, "-m", "homeport"]
START_TIMEOUT_S = 90.0  # a loaded 2-core machine may take this long to import grpc


@dataclass
class Service:
    name: str
    kind: str
    region: str  # the hosting region
    argv: list[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    wanted: bool = True  # False once stopped on purpose (moved, or region lost)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class Services:
    topology: Topology
    topology_path: Path
    logs: Path
    workers_per_region: int
    journal: Path = Path("/dev/null")  # executions journaled by chaos.app handlers
    lost: set[str] = field(default_factory=set)
    by_name: dict[str, Service] = field(default_factory=dict)
    placed: dict[str, tuple[str, str]] = field(default_factory=dict)  # home -> serving, copy

    def start_gateways(self) -> None:
        for region in self.topology.regions:
            argv = [
                *HOMEPORT,
                "gateway",
                "--topology",
                str(self.topology_path),
                "--region",
                region.name,
                "--routing",
                "etcd",
                "--admin-port",
                "-1",
            ]
            self._launch(
                Service(
                    f"gateway-{region.name}",
                    "gateway",
                    region.name,
                    argv,
                    self.logs / f"gateway-{region.name}.log",
                )
            )
        self._wait_ready([s for s in self.by_name.values() if s.kind == "gateway"], "listening on")

    def place_workers(self, route: Route) -> bool:
        """Run `route.home`'s workers where the route says; True when they moved."""
        where = (route.serving, route.copy)
        if self.placed.get(route.home) == where:
            return False
        for svc in self.workers_of(route.home):
            svc.wanted = False
            _signal(svc, signal.SIGKILL if svc.region in self.lost else signal.SIGTERM)
        self.placed[route.home] = where
        if route.serving in self.lost:
            return True
        host, port = store_address(self.topology, route, route.serving)
        serving = self.topology.region(route.serving)
        pg = self.topology.dial(
            route.serving, route.serving, "postgres", _pg_hostport(serving.postgres)
        )
        dsn = serving.postgres.replace(_pg_hostport(serving.postgres), pg)
        partitions = self.topology.region(route.home).partitions
        started = []
        for i in range(self.workers_per_region):
            name = f"worker-{route.home}-{i}"
            argv = [
                *HOMEPORT,
                "worker",
                "--app",
                "chaos.app:app",
                "--region",
                route.home,
                "--partitions",
                str(partitions),
                "--redis-url",
                f"redis://{host}:{port}/0",
                "--pg-dsn",
                dsn,
                "--admin-port",
                "-1",
            ]
            svc = Service(name, "worker", route.serving, argv, self.logs / f"{name}.log")
            self._launch(svc)
            started.append(svc)
        self._wait_ready(started, "worker ")
        return True

    def workers_of(self, home: str) -> list[Service]:
        return [s for s in self.by_name.values() if s.name.startswith(f"worker-{home}-")]

    def _launch(self, svc: Service) -> None:
        svc.log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "HOMEPORT_CHAOS_JOURNAL": str(self.journal),
               "HOMEPORT_CHAOS_HOST": svc.region}  # fmt: skip
        with svc.log.open("ab") as out:
            svc.proc = subprocess.Popen(
                svc.argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=os.getcwd(),
            )
        svc.wanted = True
        self.by_name[svc.name] = svc

    def _wait_ready(self, services: list[Service], marker: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        for svc in services:
            while marker not in svc.log.read_text(errors="replace"):
                if not svc.alive() or time.monotonic() > deadline:
                    tail = "\n".join(svc.log.read_text(errors="replace").splitlines()[-10:])
                    raise RunError(f"{svc.name} did not start (log {svc.log}):\n{tail}")
                time.sleep(0.05)  # polling a log for readiness, bounded by the deadline

    # ---- what faults do to services ----------------------------------------------

    def kill(self, name: str) -> bool:
        svc = self.by_name.get(name)
        if svc is None or not svc.alive():
            return False
        _signal(svc, signal.SIGKILL)
        return True

    def restart(self, name: str) -> bool:
        svc = self.by_name.get(name)
        if svc is None or svc.alive() or not svc.wanted or svc.region in self.lost:
            return False
        self._launch(svc)
        return True

    def signal(self, name: str, sig: signal.Signals) -> bool:
        svc = self.by_name.get(name)
        if svc is None or not svc.alive():
            return False
        _signal(svc, sig)
        return True

    def hosted_by(self, region: str) -> list[Service]:
        return [s for s in self.by_name.values() if s.region == region and s.alive()]

    def stop_all(self) -> None:
        live = [s for s in self.by_name.values() if s.alive()]
        for svc in live:
            _signal(svc, signal.SIGCONT)
            _signal(svc, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for svc in live:
            assert svc.proc is not None
            try:
                svc.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal(svc, signal.SIGKILL)
                svc.proc.wait(5)
        for svc in self.by_name.values():
            if svc.proc is not None:
                svc.proc.poll()


def _signal(svc: Service, sig: signal.Signals) -> None:
    if svc.proc is None or svc.proc.poll() is not None:
        return
    try:
        os.killpg(svc.proc.pid, sig)
    except ProcessLookupError:
        pass


def _pg_hostport(dsn: str) -> str:
    return dsn.split("@", 1)[1].split("/", 1)[0]
