"""`homeport demo`: the main job, end to end, on a local cluster it starts and stops.

Today it brings the local multi-region cluster up, shows every component healthy and
the topology, and stops everything it started. Later stages add the keyed workload
through the gateway and a region failover.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import click
from rich.console import Console

from regions.cli import print_status, print_topology
from regions.devcluster import ClusterSpec, DevCluster
from regions.errors import RegionsError
from regions.processes import is_alive

console = Console(stderr=True)


@click.command()
@click.option("--regions", "n", default=3, show_default=True, help="Number of regions.")
@click.option("--keep-state", is_flag=True, help="Keep logs and topology after the demo.")
def demo(n: int, keep_state: bool) -> None:
    """Start a local cluster, show it working, and stop everything it started."""
    state = Path(tempfile.mkdtemp(prefix="homeport-demo-"))
    state.chmod(0o755)  # PostgreSQL runs as `postgres`, which must enter this directory
    cluster = DevCluster(state / "cluster")
    started = time.monotonic()
    try:
        with console.status("starting the local cluster") as status:
            topology = cluster.up(ClusterSpec.default(n), progress=status.update)
    except RegionsError as exc:
        raise click.ClickException(str(exc)) from exc
    records = cluster.records()
    try:
        console.print(f"[green]cluster up[/] in {time.monotonic() - started:.1f}s")
        print_topology(topology)
        rows = cluster.status()
        print_status(rows, cluster.state_dir)
    finally:
        cluster.down()
    healthy = sum(r.healthy for r in rows)
    left = [r.name for r in records if is_alive(r)]
    console.print(
        f"summary: {len(topology.regions)} regions, {healthy}/{len(rows)} components healthy, "
        f"{len(topology.links)} Toxiproxy links, left running after stop: {left or 'none'}"
    )
    if keep_state:
        console.print(f"state kept in {state}")
    else:
        shutil.rmtree(state, ignore_errors=True)
    if healthy != len(rows) or left:
        raise SystemExit(1)
