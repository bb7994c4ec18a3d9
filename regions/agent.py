"""The region agent: one process per region that runs the region's share of the control
plane and keeps the right workers running.

- a health `Observer` probing every other region;
- a failover `Controller` candidate (one agent of the deployment wins the election);
- a `MirrorLagProbe` exporting the lag of every mirror as seen from here;
- a `LoadMeter` publishing the load of every home it runs workers for, for the
  controller's capacity check, and reading the controller's scale orders
  (`regions.capacity`): a standby ordered to run more workers for a home starts them;
- a supervisor (`regions.workforce`): for every home region the routing table says this
  region serves, it keeps `workers` worker processes (`homeport worker --manager ...`)
  pointed at the copy of that home's data the route names. After a failover, the
  standby's agent starts workers for the failed home on its promoted mirror; after a
  failback it stops them. A dead worker is restarted and its leases evicted at once;
  a fence freezes the workers until the lease is back.

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
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from homeport.core.admin import AdminServer
from homeport.core.metrics import Metrics
from homeport.core.settings import Settings
from homeport.regions.capacity import CapacityModel, ScaleOrder, watch_orders
from homeport.regions.control import ControlPlane
from homeport.regions.controller import Controller
from homeport.regions.health import Observer
from homeport.regions.loadmeter import LoadMeter
from homeport.regions.metrics import RegionsMetrics
from homeport.regions.mirror import MirrorLagProbe
from homeport.regions.routing import Route, next_standby, store_address
from homeport.regions.topology import Topology
from homeport.regions.workforce import Wanted, Workforce
from prometheus_client import CollectorRegistry, Counter

log = logging.getLogger(__name__)
ORDER_WATCH_RETRY_S = 1.0  # seconds before a failed scale-order watch is opened again


@dataclass
class AgentSettings:
    app: str
    workers: int = 2  # worker processes per served home region; >= 1
    fence_kill_s: float = 30.0  # seconds a fence may freeze workers before they are ended
    # seconds a standby group wanted after start-up waits before its processes boot
    # (regions.workforce: a failover's drain goes first)
    standby_delay_s: float = 10.0
    warm_standby: bool = True  # park workers on the mirrors this region stands by for
    confirm_s: float = 3.0  # seconds a quorum must agree a region is down
    interval_s: float = 0.25  # seconds between supervisor passes
    log_dir: Path = Path(".")
    admin_port: int = 0  # 0 = any free port, -1 = no admin server
    # Interface of the admin server. Default loopback; 0.0.0.0 in a pod, where the
    # kubelet's probes arrive on the pod's IP.
    admin_host: str = "127.0.0.1"
    worker_args: tuple[str, ...] = ()  # extra arguments for `homeport worker`
    metrics_targets_dir: str = ""  # announce /metrics here (core.targets); "" = do not


class Agent:
    def __init__(
        self,
        topology: Topology,
        region: str,
        settings: AgentSettings,
        capacity_model: CapacityModel | None = None,
    ) -> None:
        self.topology = topology
        self.region = region
        self.settings = settings
        self.capacity_model = capacity_model
        self.scale_orders: dict[str, ScaleOrder] = {}
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
        self.workforce = Workforce(
            region, settings.log_dir, settings.workers,
            fence_kill_s=settings.fence_kill_s,
            standby_delay_s=settings.standby_delay_s,
            on_restart=lambda home: self.restarts.labels(home).inc(),
        )  # fmt: skip
        self._stop = asyncio.Event()
        self._nudge = asyncio.Event()  # run the next supervisor pass now (a scale order)
        self.controller: Controller | None = None
        self._fenced = False
        self._was_leased = False

    # --- worker supervision -------------------------------------------------------------

    def _store_of(self, route: Route) -> tuple[str, int]:
        host, port = store_address(self.topology, route, self.region)
        return f"redis://{host}:{port}/0", self.topology.region(route.home).partitions

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

    def wanted(self, routes: dict[str, Route]) -> dict[str, Wanted]:
        """The homes this region serves per `routes`, and how to run their workers; and,
        parked, the homes it would take over next: those it stands by for while their own
        region serves them, and its own home while another region serves it.

        Parked workers are warm standbys: started on the mirror, a read-only replica,
        they wait (`--wait-primary`) until a promotion makes it a primary, then run at
        once; the failover costs no process start. Their command line is the one a
        failed-over route asks for, so the promotion adopts them as they are."""
        out = {}
        for home, route in routes.items():
            if route.serving == self.region:
                url, partitions = self._store_of(route)
                order = self.scale_orders.get(home)
                # An order holds for the failover it was given in: a failback (or a
                # second failover) moves the epoch on and the group back to its size.
                count = order.workers if order and order.epoch == route.epoch else None
                count = count if order and order.region == self.region else None
                out[home] = Wanted(self._argv(route), url, partitions, count=count)
            elif self.settings.warm_standby:
                parked = self._parked_route(route)
                if parked is not None:
                    url, partitions = self._store_of(parked)
                    # Wait for a promotion *after* this route: the mirror is a primary for
                    # a moment during a failback too, still at the failback's epoch.
                    wait = ("--wait-primary-epoch", str(route.epoch + 1))
                    policy = self.topology.capacity_policy
                    out[home] = Wanted(
                        self._argv(parked), url, partitions, parked=True, extra=wait,
                        reserves=policy.prepared_workers if policy.check else 0,
                    )  # fmt: skip
        return out

    def _parked_route(self, route: Route) -> Route | None:
        """The route this region would serve `route.home` by next, if it is the one to
        take it over: the region holding the copy the next failover promotes (the
        mirror, or a spare re-protection named), and the home region itself while it is
        failed over (a failback next)."""
        home = route.home
        target = next_standby(self.topology, route)
        if target is not None and target[0] == self.region != route.serving:
            return Route(home, self.region, route.epoch, copy=target[1])
        if route.serving != home and home == self.region:
            return Route(home, home, route.epoch, copy="primary")
        return None

    async def supervise_once(
        self, routes: dict[str, Route], fenced: bool = False, routes_fresh: bool = True
    ) -> None:
        """Converge the worker processes on `routes` (see `regions.workforce`). `fenced`:
        this region has lost its etcd lease (cut off from the quorum); it may be failed
        over at any moment, so its workers are frozen, like its gateways stop writing."""
        self.workforce.converge(self.wanted(routes), fenced=fenced, routes_fresh=routes_fresh)

    def _take_orders(self, orders: dict[str, ScaleOrder]) -> None:
        self.scale_orders = orders

    async def _watch_orders(self, cp: ControlPlane) -> None:
        """Take each scale order the moment the controller writes it and converge at
        once: a worker added by a scale-up then starts without waiting for the load
        meter's next read (every 2 s), which stays as the fallback of a broken watch."""
        while not self._stop.is_set():
            try:
                async for order in watch_orders(cp.etcd, self.topology.etcd_prefix):
                    log.info("agent %s: scale order for %s: %d workers in %s at epoch %d",
                             self.region, order.home, order.workers, order.region,
                             order.epoch)  # fmt: skip
                    self.scale_orders = {**self.scale_orders, order.home: order}
                    self._nudge.set()
            except Exception as exc:  # noqa: BLE001 - etcd elects, restarts: watch again
                log.debug("agent %s: scale-order watch ended: %s", self.region, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), ORDER_WATCH_RETRY_S)

    def status(self) -> dict[str, Any]:
        return {
            "role": "agent",
            "region": self.region,
            "controller_leader": bool(self.controller and self.controller.is_leader),
            "serving": {
                home: [p.pid for p in group.procs if p.poll() is None]
                for home, group in self.workforce.groups.items()
            },
            "workers": self.workforce.rows(),
        }

    # --- main ---------------------------------------------------------------------------

    async def run(self) -> None:
        cp = await ControlPlane.open(self.topology, self.region)
        await cp.routing.bootstrap(self.topology)
        observer = Observer(self.topology, self.region, cp.etcd, self.metrics, self.rm)
        probe = MirrorLagProbe(self.topology, self.region, self.metrics, self.rm)
        self.controller = Controller(
            cp, f"agent-{self.region}-{os.getpid()}", self.metrics, self.rm,
            confirm_s=self.settings.confirm_s, capacity_model=self.capacity_model,
        )  # fmt: skip
        meter = LoadMeter(
            cp.etcd, self.topology.etcd_prefix, self.region, self.workforce.rows,
            self.metrics, concurrency=Settings.load().concurrency,
            on_orders=self._take_orders, heartbeat_s=Settings.load().heartbeat_s,
            reserves=self.workforce.reserves,
        )  # fmt: skip
        loops = [observer, probe, meter, self.controller]
        admin = None
        if self.settings.admin_port >= 0:
            admin = AdminServer(
                self.metrics, status=self.status, healthy=lambda: True,
                ready=lambda: bool(self.workforce.groups), port=self.settings.admin_port,
                host=self.settings.admin_host,
                targets_dir=self.settings.metrics_targets_dir, job="agent",
                labels={"site": self.region},
            )  # fmt: skip
            port = await admin.start()
            log.info("agent %s: admin on %s:%d", self.region, self.settings.admin_host, port)
        for loop in loops:
            loop.start()
        orders = asyncio.create_task(self._watch_orders(cp), name="scale-order watch")
        routes: dict[str, Route] = {}
        try:
            while not self._stop.is_set():
                fresh = True
                try:
                    routes = dict((await cp.routing.load()).routes)
                    self.rm.observe_routes(routes)
                except Exception as exc:  # noqa: BLE001 - keep serving what we served
                    fresh = False
                    self.metrics.loop_errors.labels("agent-routes").inc()
                    log.debug("agent %s: routing table unreadable: %s", self.region, exc)
                fenced = observer.lease.lease_id is not None and not observer.lease.valid
                fenced = fenced or (self._was_leased and observer.lease.lease_id is None)
                self._was_leased = self._was_leased or observer.lease.valid
                if fenced != self._fenced:
                    log.warning(
                        "agent %s: %s",
                        self.region,
                        "fenced: etcd lease lost" if fenced else "lease back: unfenced",
                    )
                    self._fenced = fenced
                await self.supervise_once(routes, fenced, fresh)
                self.workforce.publish()
                await self._pause()
        finally:
            orders.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await orders
            await self.workforce.stop()
            for loop in reversed(loops):
                with contextlib.suppress(Exception):
                    await loop.stop()
            if admin is not None:
                await admin.stop()
            await cp.close()

    async def _pause(self) -> None:
        """Sleep until the next supervisor pass: `interval_s`, cut short by a stop or a
        scale order."""
        waits = [asyncio.ensure_future(e.wait()) for e in (self._stop, self._nudge)]
        try:
            await asyncio.wait(waits, timeout=self.settings.interval_s,
                               return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        finally:
            for w in waits:
                w.cancel()
        self._nudge.clear()

    def stop(self) -> None:
        self._stop.set()

    def stop_on_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
