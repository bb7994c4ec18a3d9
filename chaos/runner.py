"""One game day, start to verdict.

1. start a private local cluster of the scenario's shape (the launcher users run), then
   the services: a gateway per region and the workers of every home region, placed by
   the routing table (`chaos.services`);
2. run the load, apply the planned timeline, follow the routing table (moving workers and
   the load's routes when a home fails over), and sample mirror lag;
3. when the load ends (or a stop condition fires), revert what is still applied and let
   acknowledged work drain;
4. read every execution back from the databases, write the history, judge it, report.

Everything started is stopped again, whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aredis

from chaos import collect
from chaos.checker import Verdict, check
from chaos.driver import ControlActions, FaultContext, ProcessControl
from chaos.faults import Fault
from chaos.history import FaultRecord, History, LagSample
from chaos.load import ChaosRoutes, LoadGenerator
from chaos.plan import Planned, plan
from chaos.report import write_reports
from chaos.scenario import Scenario
from chaos.services import Services
from regions.control import ControlPlane
from regions.devcluster import ClusterSpec, DevCluster
from regions.mirror import measure
from regions.topology import Topology, split_address
from regions.toxiproxy import ToxiproxyClient

Say = Callable[[str], None]
SAMPLE_S = 0.5  # route following and mirror-lag sampling interval


@dataclass
class RunResult:
    history: Path
    verdict: Verdict
    reports: list[Path]


class GameDay:
    def __init__(
        self,
        scenario: Scenario,
        raw: dict[str, Any],
        seed: int,
        out: Path,
        say: Say = print,
        keep: bool = False,
    ) -> None:
        self.scenario = scenario
        self.raw = raw
        self.seed = seed
        self.out = out
        self.say = say
        self.keep = keep
        self.run_id = f"{scenario.name[:20]}{seed}x{uuid.uuid4().hex[:6]}"
        self.history = History()
        self.t0 = 0.0
        self.at_home: dict[str, bool] = {}

    def run(self) -> RunResult:
        return asyncio.run(self._run())

    @staticmethod
    def last_faults(history: Path) -> list[FaultRecord]:
        """The fault steps a finished run applied, read back from its history."""
        from chaos.history import read_history

        return read_history(history).faults

    def _log(self, message: str) -> None:
        at = time.time() - self.t0 if self.t0 else 0.0
        self.say(f"[{at:6.1f}s] {message}")

    async def _run(self) -> RunResult:
        self.out.mkdir(parents=True, exist_ok=True)
        state = Path(tempfile.mkdtemp(prefix=f"homeport-chaos-{self.scenario.name}-"))
        state.chmod(0o755)
        shape = self.scenario.topology
        cluster = DevCluster(state / "cluster")
        planned = plan(self.scenario, self.seed)
        self.say(f"scenario {self.scenario.name}, seed {self.seed}: {len(planned)} fault steps")
        for p, _ in planned:
            self.say(
                f"  t+{p.start:g}s {p.fault} {', '.join(p.targets)}"
                + (f" for {p.end - p.start:g}s" if p.end is not None else "")
            )
        try:
            cluster.up(
                ClusterSpec.default(shape.regions, shape.partitions),
                progress=lambda m: self.say(f"cluster: {m}"),
            )
            return await self._with_cluster(cluster, state, planned)
        finally:
            with contextlib.suppress(Exception):
                cluster.down()
            if not self.keep:
                shutil.rmtree(state, ignore_errors=True)

    async def _with_cluster(
        self, cluster: DevCluster, state: Path, planned: list[tuple[Planned, Fault]]
    ) -> RunResult:
        topo = self.topo = cluster.topology
        services = Services(
            topo,
            cluster.topology_path,
            state / "cluster" / "logs",
            self.scenario.topology.workers_per_region,
            self.out / "journal.jsonl",
        )
        (self.out / "journal.jsonl").unlink(missing_ok=True)
        if topo.toxiproxy is None:
            raise RuntimeError("the local cluster runs without Toxiproxy")
        tox = ToxiproxyClient(topo.toxiproxy.api)
        processes = ProcessControl(cluster, services)
        control = ControlActions(topo, self.history.events, self._log)
        ctx = FaultContext(tox, processes, control)
        cp = await ControlPlane.open(topo, "client")
        try:
            table = await cp.routing.bootstrap(topo)
            self.say("services: gateways")
            await asyncio.to_thread(services.start_gateways)
            for route in table.routes.values():
                await asyncio.to_thread(services.place_workers, route)
            self.say("services: workers ready")
            return await self._game(topo, cp, services, ctx, planned)
        finally:
            services.stop_all()
            processes.close()
            with contextlib.suppress(Exception):
                tox.reset()
            tox.close()
            with contextlib.suppress(Exception):
                await cp.close()

    async def _game(
        self,
        topo: Topology,
        cp: ControlPlane,
        services: Services,
        ctx: FaultContext,
        planned: list[tuple[Planned, Fault]],
    ) -> RunResult:
        load = self.scenario.load
        routes = ChaosRoutes(topo)
        gen = LoadGenerator(topo, load, self.seed, self.run_id, self.history.ops, routes)
        self.t0 = time.time()
        self.history.meta = {
            "scenario": self.raw,
            "seed": self.seed,
            "run": self.run_id,
            "t0": self.t0,
            "plan": [p.as_dict() for p, _ in planned],
        }
        background = [
            asyncio.create_task(self._follow(topo, cp, services, routes)),
            asyncio.create_task(self._sample_lag(topo, cp)),
            asyncio.create_task(self._stop_conditions(gen)),
        ]
        reverts: list[asyncio.Task[None]] = []
        faults = asyncio.create_task(self._timeline(ctx, planned, reverts))

        def progress(sent: int, acked: int, errors: int) -> None:
            self._log(f"load: sent {sent}, acked {acked}, errors {errors}")

        try:
            await asyncio.wait_for(gen.run(progress), self.scenario.stop.max_duration_s)
        except TimeoutError:
            self._log("stop: max_duration_s reached")
        faults.cancel()
        for task in reverts:
            task.cancel()
        await asyncio.gather(faults, *reverts, return_exceptions=True)
        await self._revert_open(ctx, planned)
        ctx.processes.close()
        await self._drain()
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        self.history.execs = await collect.executions(topo, self.run_id, self.out / "journal.jsonl")
        path = self.out / "history.jsonl"
        self.history.write(path)
        verdict = check(self.history)
        reports = write_reports(self.history, verdict, self.out)
        self.say(f"history: {path}")
        return RunResult(path, verdict, reports)

    async def _timeline(
        self,
        ctx: FaultContext,
        planned: list[tuple[Planned, Fault]],
        reverts: list[asyncio.Task[None]],
    ) -> None:
        for p, fault in planned:
            delay = self.t0 + p.start - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            record = FaultRecord(
                p.fault,
                p.step,
                time.time(),
                targets=list(p.targets),
                occurrence=p.occurrence,
                disruptive=fault.disruptive,
            )
            self.history.faults.append(record)
            try:
                record.detail = await fault.apply(ctx, list(p.targets))
            except Exception as exc:  # noqa: BLE001 - a failed step is reported, the run goes on
                record.detail = f"FAILED: {type(exc).__name__}: {exc}"
            self._log(f"fault {p.fault}: {record.detail}")
            if p.end is None:
                record.end = record.start if not fault.disruptive else None
                continue
            reverts.append(asyncio.create_task(self._revert_at(ctx, p, fault, record)))

    async def _revert_at(
        self, ctx: FaultContext, p: Planned, fault: Fault, record: FaultRecord
    ) -> None:
        await asyncio.sleep(max(0.0, self.t0 + (p.end or 0) - time.time()))
        await self._revert(ctx, fault, p, record)

    async def _revert(
        self, ctx: FaultContext, fault: Fault, p: Planned, record: FaultRecord
    ) -> None:
        if record.end is not None:
            return
        record.end = time.time()
        try:
            done = await fault.revert(ctx, list(p.targets))
        except Exception as exc:  # noqa: BLE001 - report and carry on reverting the rest
            done = f"revert FAILED: {type(exc).__name__}: {exc}"
        if done:
            self._log(f"fault {p.fault}: {done}")

    async def _revert_open(self, ctx: FaultContext, planned: list[tuple[Planned, Fault]]) -> None:
        """Revert every step still applied, newest first, when the load ends."""
        records = {(r.step, r.occurrence): r for r in self.history.faults}
        for p, fault in reversed(planned):
            record = records.get((p.step, p.occurrence))
            if record is not None and record.end is None:
                await self._revert(ctx, fault, p, record)

    async def _drain(self) -> None:
        acked = {o.id for o in self.history.ops if o.acked is not None}
        deadline = time.monotonic() + self.scenario.stop.drain_s
        self._log(f"drain: waiting up to {self.scenario.stop.drain_s:g}s for {len(acked)} tasks")
        missing = len(acked)
        while time.monotonic() < deadline:
            try:
                done = collect.journaled(self.out / "journal.jsonl")
            except Exception:  # noqa: BLE001 - a database still recovering: look again
                done = set()
            missing = len(acked - done)
            if not missing:
                break
            await asyncio.sleep(0.5)  # polling the record store, bounded by the deadline
        self._log(f"drain: {missing} acknowledged tasks not run yet")

    async def _follow(
        self, topo: Topology, cp: ControlPlane, services: Services, routes: ChaosRoutes
    ) -> None:
        failures = 0
        while True:
            await asyncio.sleep(SAMPLE_S)
            try:
                table = await asyncio.wait_for(cp.routing.load(), 2.0)
            except Exception:  # noqa: BLE001 - etcd member gone: reconnect through another
                failures += 1
                if failures <= 3:
                    self._log("route follower: etcd unreachable, reconnecting")
                with contextlib.suppress(Exception):
                    await cp.etcd.close()
                    cp.etcd = (await ControlPlane.open(topo, "client")).etcd
                    cp.routing.client = cp.etcd
                continue
            for home, route in table.routes.items():
                routes.serving[home] = route.serving
                self.at_home[home] = route.copy == "primary" and route.serving == home
                if await asyncio.to_thread(services.place_workers, route):
                    self._log(
                        f"route: {home} served by {route.serving} ({route.copy}), "
                        f"epoch {route.epoch}: workers moved"
                    )

    async def _sample_lag(self, topo: Topology, cp: ControlPlane) -> None:
        clients: dict[str, aredis.Redis] = {}

        def client(address: str) -> aredis.Redis:
            if address not in clients:
                host, port = split_address(address)
                clients[address] = aredis.Redis(
                    host=host, port=port, socket_timeout=0.5, socket_connect_timeout=0.5
                )
            return clients[address]

        try:
            while True:
                for region in topo.regions:
                    r = region.redis
                    if r.primary is None or r.mirror is None or region.standby is None:
                        continue
                    if not self.at_home.get(region.name, True):
                        continue  # failed over: the old pair no longer replicates
                    try:
                        lag = await measure(
                            client(r.primary), client(r.mirror), region.name, region.standby
                        )
                    except Exception:  # noqa: BLE001 - a dead or promoted server: no sample
                        continue
                    if math.isfinite(lag.seconds):
                        self.history.lags.append(
                            LagSample(time.time(), region.name, lag.seconds, lag.bytes, lag.link_up)
                        )
                await asyncio.sleep(SAMPLE_S)
        finally:
            for c in clients.values():
                await c.aclose()

    async def _stop_conditions(self, gen: LoadGenerator) -> None:
        stop = self.scenario.stop
        if stop.abort_error_ratio <= 0:
            return
        while True:
            await asyncio.sleep(1.0)
            if time.time() - self.t0 > stop.window_s and gen.error_ratio(stop.window_s) >= (
                stop.abort_error_ratio
            ):
                self._log(
                    f"stop: error ratio over the last {stop.window_s:g}s reached "
                    f"{stop.abort_error_ratio}; stopping the load"
                )
                gen.stopped = True
                return
