"""`homeport dev`: start, inspect and stop the local multi-region cluster."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import json
import os
import time
from collections.abc import Coroutine
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar, cast

import click
from homeport.core import logs
from homeport.core.security import (
    cluster_insecure_option,
    insecure_option,
    start_role_or_usage,
)
from homeport.regions.capacity import CapacityModel
from homeport.regions.control import ControlPlane
from homeport.regions.devcluster import ClusterSpec, ComponentStatus, DevCluster
from homeport.regions.errors import RegionsError
from homeport.regions.promotion import FailbackReport, PromotionReport, failback, promote
from homeport.regions.statusview import region_rows, render_region_status
from homeport.regions.topology import Topology, load_topology, topology_file_option
from rich.console import Console
from rich.table import Table

from homeport.options import out_dir_option

T = TypeVar("T")

console = Console(stderr=True)


def default_state_dir() -> Path:
    return Path(os.environ.get("HOMEPORT_HOME", ".homeport"))


state_dir_option = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=default_state_dir,
    show_default=".homeport (or $HOMEPORT_HOME)",
    help="Directory holding the cluster's topology, PIDs and logs.",
)


def _fail(exc: Exception) -> None:
    raise click.ClickException(str(exc)) from exc


@click.group()
def dev() -> None:
    """Run a local multi-region cluster on loopback (real Redis, PostgreSQL, etcd, Toxiproxy).

    \b
      homeport dev up            start 3 regions, print where everything is
      homeport dev status        show every process and whether it is healthy
      homeport dev down          stop exactly what `up` started, by PID
    """


@dev.command()
@click.option("--regions", "n", default=3, show_default=True, help="Number of regions (1-7).")
@click.option("--partitions", default=16, show_default=True, help="Partitions per region (1-4096).")
@click.option(
    "--cluster-region",
    multiple=True,
    help="Run this region's Redis as a real Redis Cluster (3 masters). Repeatable.",
)
@click.option("--seed", type=int, default=None, help="Seed for port choice (reproducible plans).")
@click.option(
    "--app",
    default="homeport.loadtest.apps:app",
    show_default=True,
    help="App whose workers the region agents run (pkg.module:attr).",
)
@click.option(
    "--servers-only",
    is_flag=True,
    help="Start Redis, PostgreSQL, etcd and Toxiproxy only: no gateways, agents, workers.",
)
@click.option(
    "--workers",
    default=2,
    show_default=True,
    help="Worker processes per served home region (two, so that one kill is no outage).",
)
@click.option(
    "--with-prometheus",
    is_flag=True,
    help="Also run Prometheus (built by scripts/install.sh) with deploy/prometheus rules.",
)
@cluster_insecure_option("`dev up` runs")
@state_dir_option
def up(
    n: int,
    partitions: int,
    cluster_region: tuple[str, ...],
    seed: int | None,
    app: str,
    servers_only: bool,
    workers: int,
    with_prometheus: bool,
    insecure: bool,
    state_dir: Path,
) -> None:
    """Start the local cluster and write its topology file.

    By default every region also runs a gateway (following the routing table in etcd)
    and an agent (health observer, failover controller candidate, mirror-lag probe, and
    the workers of --app)."""
    try:
        spec = ClusterSpec.default(n, partitions, cluster_region)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    if not servers_only:
        # The agents' workers import the app; a typo would only show as workers that
        # crash-loop behind a healthy-looking cluster, so check it before starting anything.
        from homeport.core.cli import load_app

        load_app(app)
    spec = dataclasses.replace(
        spec,
        seed=spec.seed if seed is None else seed,
        services=None if servers_only else app,
        workers=workers,
        with_prometheus=with_prometheus,
        insecure=insecure,
    )
    cluster = DevCluster(state_dir)
    started = time.monotonic()
    try:
        with console.status("starting the local cluster") as status:
            topology = cluster.up(spec, progress=lambda msg: status.update(msg))
    except RegionsError as exc:
        _fail(exc)
    console.print(
        f"[green]up[/] in {time.monotonic() - started:.1f}s, state in {cluster.state_dir}"
    )
    print_topology(topology)
    console.print(f"topology file: {cluster.topology_path}")
    url = cluster.prometheus_url()
    if url is not None:
        console.print(f"prometheus: {url} (API only, no web UI: {url}/api/v1/alerts)")


@dev.command()
@state_dir_option
def down(state_dir: Path) -> None:
    """Stop every process `up` started (by PID, never by name)."""
    cluster = DevCluster(state_dir)
    try:
        stopped = cluster.down()
    except RegionsError as exc:
        _fail(exc)
    console.print(f"stopped {len(stopped)} processes")


@dev.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@state_dir_option
def status(as_json: bool, state_dir: Path) -> None:
    """Show each process of the local cluster, its address, PID and health.

    Exits 1 when any component is stopped or unhealthy.
    """
    cluster = DevCluster(state_dir)
    try:
        rows = cluster.status()
    except RegionsError as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps([asdict(r) for r in rows], indent=1))
    else:
        print_status(rows, cluster.state_dir)
    if not all(r.healthy for r in rows):
        raise SystemExit(1)


def print_status(rows: list[ComponentStatus], state_dir: Path) -> None:
    table = Table(title=f"local cluster in {state_dir}")
    for col in ("component", "region", "address", "pid", "state"):
        table.add_column(col)
    for r in rows:
        if r.healthy:
            state = "[green]healthy[/]"
        else:
            state = "[yellow]up, unhealthy[/]" if r.running else "[red]stopped[/]"
        table.add_row(r.name, r.region, r.address, str(r.pid), state)
    console.print(table)
    console.print(f"logs: {state_dir / 'logs'}")


def print_topology(topology: Topology) -> None:
    table = Table(title="regions")
    for col in ("region", "standby", "redis", "etcd", "postgres", "gateway"):
        table.add_column(col)
    for r in topology.regions:
        if r.redis.mode == "single":
            redis = f"primary {r.redis.primary}\nreplica {', '.join(r.redis.replicas)}"
            redis += f"\nmirror {r.redis.mirror}"
            redis += f"\nspare {r.redis.spare}" if r.redis.spare else ""
        else:
            redis = "cluster " + ", ".join(r.redis.nodes)
        table.add_row(r.name, r.standby or "-", redis, r.etcd, r.postgres, r.gateway or "-")
    console.print(table)
    api = topology.toxiproxy.api if topology.toxiproxy else "-"
    console.print(f"{len(topology.links)} Toxiproxy links; API at {api}")


topology_option = topology_file_option(
    "Topology file (default: the local cluster's, <state-dir>/topology.yaml)."
)


def _topology(topology_path: Path | None, state_dir: Path) -> Topology:
    try:
        if topology_path is not None:
            return load_topology(topology_path)
        return DevCluster(state_dir).topology
    except RegionsError as exc:
        raise click.ClickException(str(exc)) from exc


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except RegionsError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
def region() -> None:
    """Inspect the routing table, promote a standby, fail back a home region.

    \b
      homeport region status              routes, epochs, mirror lag, health votes
      homeport region promote A --to B    fail A over to its standby B, step by step
      homeport region failback A          recover A's orphans, resync A, and switch back
    """


@region.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@topology_option
@state_dir_option
def region_status(as_json: bool, topology_path: Path | None, state_dir: Path) -> None:
    """Show which region serves each home region, at which epoch, and mirror lag; then
    the last failover history records, with the capacity check each promotion ran."""
    topo = _topology(topology_path, state_dir)
    rows = _run(region_rows(topo))
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    render_region_status(rows)


@region.command("promote")
@click.argument("home")
@click.option("--to", "to", default=None, help="The standby region (default: HOME's standby).")
@topology_option
@state_dir_option
def region_promote(home: str, to: str | None, topology_path: Path | None, state_dir: Path) -> None:
    """Fail HOME over to its standby: bump the epoch, fence, promote the mirror."""
    topo = _topology(topology_path, state_dir)

    async def go() -> PromotionReport:
        cp = await ControlPlane.open(topo, "client")
        try:
            await cp.routing.bootstrap(topo)
            return await promote(cp, home, to, reason="manual (CLI)", say=console.print)
        finally:
            await cp.close()

    report = _run(go())
    console.print(f"[green]promoted[/] {home} -> {report.to} in {report.seconds:.2f}s")


@region.command("failback")
@click.argument("home")
@click.option(
    "--no-switch",
    is_flag=True,
    help="Stop once HOME replicates the serving copy; switch later with `failback` again.",
)
@topology_option
@state_dir_option
def region_failback(
    home: str, no_switch: bool, topology_path: Path | None, state_dir: Path
) -> None:
    """Re-enqueue HOME's orphans, make HOME a replica, then switch back to HOME."""
    topo = _topology(topology_path, state_dir)

    async def go() -> FailbackReport:
        cp = await ControlPlane.open(topo, "client")
        try:
            return await failback(cp, home, switch=not no_switch, say=console.print)
        finally:
            await cp.close()

    report = _run(go())
    for orphan in report.orphans[:20]:
        console.print(
            f"  recovered {orphan.task_id} (key {orphan.key}, partition {orphan.partition})"
        )
    if len(report.orphans) > 20:
        console.print(f"  ... and {len(report.orphans) - 20} more (kept in etcd under orphans/)")
    console.print(
        f"[green]failback[/] of {home}: {len(report.orphans)} orphans recovered, "
        f"epoch {report.epoch}"
    )


DEFAULT_CAPACITY_MODEL = "homeport.simulation.absorb:answer"


def load_capacity_model(ref: str) -> CapacityModel | None:
    """The function `ref` (pkg.module:function) names, or None for `none`. Loaded by
    name because `regions` may not import `simulation` (design §1a)."""
    if ref == "none":
        return None
    module, _, attr = ref.partition(":")
    try:
        found = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise click.BadParameter(
            f"cannot load {ref!r}: {exc}. Give pkg.module:function, or `none`",
            param_hint="--capacity-model",
        ) from exc
    if not callable(found):
        raise click.BadParameter(
            f"{ref} is a {type(found).__name__}, not a function", param_hint="--capacity-model"
        )
    return cast(CapacityModel, found)


@click.command("agent")
@click.option("--region", "region_name", required=True, help="The region this agent runs in.")
@click.option("--app", required=True, help="The App workers run, as pkg.module:attr.")
@click.option("--workers", default=2, show_default=True, help="Worker processes per served home.")
@click.option(
    "--confirm-s",
    default=3.0,
    show_default=True,
    help="Seconds a quorum of regions must agree a region is down before it is promoted "
    "(at least the gateways' 3 s lease TTL).",
)
@click.option(
    "--standby-delay",
    "standby_delay_s",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Seconds the parked workers of a home this region starts standing by for after "
    "start-up (a re-protection, a failback) wait before they boot: a failover's drain "
    "gets the CPU first. 0 boots them at once.",
)
@click.option("--log-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("."))
@click.option("--admin-port", default=0, show_default=True, help="0: any free port, -1: none.")
@click.option(
    "--admin-host",
    default="127.0.0.1",
    show_default=True,
    help="Interface of the admin server (0.0.0.0 in a pod, for the kubelet's probes).",
)
@click.option(
    "--worker-arg", "worker_args", multiple=True, help="Extra argument for `homeport worker`."
)
@click.option(
    "--metrics-targets-dir",
    envvar="HOMEPORT_METRICS_TARGETS_DIR",
    default="",
    help="Announce /metrics here for Prometheus file discovery (its workers inherit it).",
)
@click.option(
    "--capacity-model",
    default=DEFAULT_CAPACITY_MODEL,
    show_default=True,
    help="The capacity check run before every promotion, as pkg.module:function "
    "(regions.capacity); `none` promotes unchecked. The default is an Erlang C check in "
    "pure Python: it needs no extra. The topology's `capacity:` sets the SLO and limits.",
)
@insecure_option("agent")
@topology_option
@state_dir_option
def agent(
    region_name: str,
    app: str,
    workers: int,
    confirm_s: float,
    standby_delay_s: float,
    log_dir: Path,
    admin_port: int,
    admin_host: str,
    worker_args: tuple[str, ...],
    metrics_targets_dir: str,
    capacity_model: str,
    topology_path: Path | None,
    state_dir: Path,
    insecure: bool,
) -> None:
    """Run REGION's agent: health observer, failover controller candidate, mirror-lag
    probe, and the worker processes of every home region REGION serves."""
    from homeport.regions.agent import Agent, AgentSettings

    logs.configure()
    topo = _topology(topology_path, state_dir)
    topo.region(region_name)
    start_role_or_usage("agent", topology_path or state_dir / "topology.yaml", insecure)
    if metrics_targets_dir:
        # The workers this agent starts announce themselves in the same directory.
        os.environ["HOMEPORT_METRICS_TARGETS_DIR"] = metrics_targets_dir
    settings = AgentSettings(
        app=app,
        workers=workers,
        confirm_s=confirm_s,
        standby_delay_s=standby_delay_s,
        log_dir=log_dir,
        admin_port=admin_port,
        admin_host=admin_host,
        worker_args=worker_args,
        metrics_targets_dir=metrics_targets_dir,
    )
    runner = Agent(topo, region_name, settings, load_capacity_model(capacity_model))

    async def go() -> None:
        runner.stop_on_signals()
        await runner.run()

    logs.run_server(go())


@click.group()
def deploy() -> None:
    """Render a production deployment from the topology (docs/deploy.md).

    \b
      homeport deploy render --topology prod.yaml --out build/
    """


@deploy.command("render")
@topology_file_option(
    "Topology file with a `deployment` section and a `deploy` section per region.",
    required=True,
)
@out_dir_option("Directory for terraform.tfvars.json and helm/<region>.values.yaml.", required=True)
def deploy_render(topology_path: Path, out: Path) -> None:
    """Write the tfvars of terraform/envs and the Helm values of every region. A bad
    topology is refused naming the field, and nothing is written under --out."""
    from homeport.regions.render import render, write

    try:
        rendered = render(load_topology(topology_path))
    except RegionsError as exc:
        raise click.ClickException(str(exc)) from exc
    for path in write(rendered, out):
        click.echo(str(path))
