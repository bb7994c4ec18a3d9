"""`homeport dev`: start, inspect and stop the local multi-region cluster."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from regions.devcluster import ClusterSpec, ComponentStatus, DevCluster
from regions.errors import RegionsError
from regions.topology import Topology

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
@state_dir_option
def up(
    n: int, partitions: int, cluster_region: tuple[str, ...], seed: int | None, state_dir: Path
) -> None:
    """Start the local cluster and write its topology file."""
    try:
        spec = ClusterSpec.default(n, partitions, cluster_region)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    if seed is not None:
        spec = ClusterSpec(spec.regions, seed)
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
        else:
            redis = "cluster " + ", ".join(r.redis.nodes)
        table.add_row(r.name, r.standby or "-", redis, r.etcd, r.postgres, r.gateway or "-")
    console.print(table)
    api = topology.toxiproxy.api if topology.toxiproxy else "-"
    console.print(f"{len(topology.links)} Toxiproxy links; API at {api}")
