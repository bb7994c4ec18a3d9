"""`homeport loadtest run`: a headless Locust run with SLO verdicts and a simulation export,
and `peers_bench` (mounted as `homeport bench peers`).

Where the load goes, in order of precedence:
- `--gateway HOST:PORT`: an already running gateway (add `--pg-dsn` to read its records);
- `--topology FILE`: a running `homeport dev up` cluster; a gateway and workers of
  `--region` are started against that region's Redis primary and database;
- neither: a two-region local cluster is started in a temporary directory (two, so
  GLOBAL durability has its cross-region mirror), then the same gateway and workers.

Outputs in `--out` (default `loadtest-results/<run id>/`): Locust's CSV files and HTML
report, `summary.json`, `export.json` (when records were read), and the process logs.
Exit 0 when every SLO holds, 1 when one fails, 2 when the run itself failed.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import click
from homeport.core.extras import require
from homeport.core.settings import Settings
from homeport.loadtest.errors import LoadTestError
from homeport.loadtest.shapes import PROFILES
from homeport.loadtest.workload import Workload
from homeport.regions.topology import topology_file_option
from rich.console import Console
from rich.table import Table

from homeport.options import out_dir_option

console = Console(stderr=True)
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h)?$")


def parse_duration(text: str) -> float:
    """`90`, `90s`, `2m`, `1h` -> seconds."""
    m = _DURATION.match(text.strip())
    if not m:
        raise click.BadParameter(
            f"{text!r}: use seconds, or a number with s, m or h", param_hint="--duration"
        )
    return float(m[1]) * {"s": 1, "m": 60, "h": 3600}[m[2] or "s"]


@dataclass(frozen=True)
class Target:
    """The system under load: a gateway, and where its records are (if known)."""

    gateway: str
    pg_dsn: str | None
    workers: int
    partitions: int
    # Each worker's /metrics text, read after the run (None: workers not ours to read).
    metrics: Callable[[], list[str]] | None = None


@contextmanager
def _local_target(
    topology_path: Path | None, region: str, engine_workers: int, out: Path
) -> Iterator[Target]:
    from homeport.loadtest.stack import LocalStack
    from homeport.regions.devcluster import ClusterSpec, DevCluster
    from homeport.regions.topology import load_topology

    with ExitStack() as stack:
        if topology_path is None:
            state = Path(tempfile.mkdtemp(prefix="homeport-loadtest-"))
            state.chmod(0o755)  # PostgreSQL runs as `postgres` and must enter it
            stack.callback(shutil.rmtree, state, True)
            cluster = DevCluster(state / "cluster")
            with console.status("starting a two-region local cluster") as status:
                topology = cluster.up(ClusterSpec.default(2), progress=status.update)
            stack.callback(cluster.down)
        else:
            topology = load_topology(topology_path)
        r = topology.region(region)
        if r.redis.primary is None:
            raise click.UsageError(
                f"region {region} is a Redis Cluster; load tests start "
                "their own gateway only for single-primary regions"
            )
        local = LocalStack(
            f"redis://{r.redis.primary}/0",
            r.postgres,
            out / "logs",
            region=region,
            partitions=r.partitions,
            workers=engine_workers,
        )
        console.print(f"starting a gateway and {engine_workers} worker(s) for {region}")
        gateway = local.start()
        stack.callback(local.stop)
        yield Target(gateway, r.postgres, engine_workers, r.partitions, local.worker_metrics)


def _verdict_table(summary: Any) -> Table:
    table = Table(
        title=f"loadtest {summary.profile}: {summary.users} users, "
        f"{summary.duration_s:.0f}s, {summary.tasks_accepted:,} tasks accepted"
    )
    for col in ("request", "count", "failures", "p50 ms", "p99 ms", "req/s"):
        table.add_column(col)
    for name, s in summary.requests.items():
        table.add_row(
            name,
            f"{s['requests']:,}",
            f"{s['failures']:,}",
            f"{s['median_ms']:.1f}",
            f"{s['p99_ms']:.1f}",
            f"{s['rps']:,.1f}",
        )
    return table


def _export(cfg: Any, target: Target, summary: Any) -> Path | None:
    from homeport.loadtest.export import build_export, slot_hold, window_s, write_export
    from homeport.loadtest.locuststats import read_history
    from homeport.loadtest.records import read_run

    if not target.pg_dsn:
        console.print("no record store known (pass --pg-dsn): export skipped")
        return None
    with console.status("waiting for the workers to finish and record every task"):
        records = asyncio.run(read_run(target.pg_dsn, cfg.run_id, summary.tasks_accepted, 120))
    console.print(
        f"records: {records.tasks:,} tasks, {records.finished:,} final, "
        f"{len(records.rows):,} attempts (accepted by the gateway: "
        f"{summary.tasks_accepted:,})"
    )
    if not records.rows:
        console.print("[yellow]no attempts recorded: export skipped")
        return None
    duration = window_s(read_history(cfg.csv_prefix), cfg.duration_s)
    doc = build_export(
        duration_s=duration,
        tasks=summary.tasks_accepted,
        rows=records.rows,
        workers=target.workers,
        # What the started workers run with: they inherit this environment
        # (HOMEPORT_CONCURRENCY, HOMEPORT_CONFIG), so the same settings load says it.
        concurrency=Settings.load().concurrency,
        partitions=target.partitions,
    )
    if target.metrics is not None:
        hold = slot_hold(target.metrics())
        if hold is not None:
            doc["slot_hold_s"] = hold
    return write_export(doc, cfg.out_dir / "export.json")


@click.group("loadtest")
def loadtest() -> None:
    """Locust load tests against the gRPC API (see docs/loadtest.md)."""


@loadtest.command("run")
@click.option(
    "--profile",
    type=click.Choice([*PROFILES, "none"]),
    default="steady",
    show_default=True,
    help="Load shape (none: constant users, Locust's -u/-r/-t).",
)
@click.option("--users", type=int, default=20, show_default=True, help="Peak Locust users.")
@click.option("--duration", default="60s", show_default=True, help="Run length: 90, 90s, 2m.")
@click.option("--spawn-rate", type=float, default=10.0, show_default=True, help="Users/s.")
@click.option("--gateway", default=None, help="host:port of a running gateway to load.")
@click.option("--pg-dsn", default=None, help="With --gateway: its record store, for export.")
@topology_file_option("A running local cluster's topology.yaml.", exists=True)
@click.option("--region", default="us-east", show_default=True, help="Region to load.")
@click.option(
    "--engine-workers",
    type=int,
    default=1,
    show_default=True,
    help="homeport worker processes to start (not with --gateway).",
)
@click.option(
    "--locust-workers",
    type=int,
    default=0,
    show_default=True,
    help="Distributed Locust: worker processes beside the master (0 = one process).",
)
@click.option(
    "--slo-p99-ms",
    type=float,
    default=50.0,
    show_default=True,
    help="SLO: largest p99 Submit latency, ms.",
)
@click.option(
    "--slo-error-rate",
    type=float,
    default=0.001,
    show_default=True,
    help="SLO: largest share of failed requests.",
)
@click.option(
    "--rate-per-user",
    type=float,
    default=10.0,
    show_default=True,
    help="Calls/s per user (0 = back to back).",
)
@click.option("--batch-size", type=int, default=50, show_default=True)
@click.option("--batch-weight", type=int, default=1, show_default=True)
@click.option("--single-weight", type=int, default=9, show_default=True)
@click.option("--keys", type=int, default=10_000, show_default=True)
@click.option("--zipf-s", type=float, default=1.1, show_default=True)
@click.option("--payload-bytes", default="64:0.8,1024:0.2", show_default=True)
@click.option("--durability", default="LOCAL:0.9,REGION:0.08,GLOBAL:0.02", show_default=True)
@click.option("--kind", default="noop", show_default=True, help="noop or work.")
@click.option("--seed", type=int, default=0, show_default=True)
@out_dir_option("Output directory (default loadtest-results/<run id>).")
def run(
    profile: str,
    users: int,
    duration: str,
    spawn_rate: float,
    gateway: str | None,
    pg_dsn: str | None,
    topology_path: Path | None,
    region: str,
    engine_workers: int,
    locust_workers: int,
    out: Path | None,
    slo_p99_ms: float,
    slo_error_rate: float,
    **workload: Any,
) -> None:
    """Run Locust headless; write CSV, HTML, summary and export; fail on a missed SLO."""
    require("loadtest", "locust")
    from homeport.loadtest.runner import RunConfig, Slo, run_locust, summarize

    try:
        wl = Workload(**workload)
    except LoadTestError as exc:
        raise click.UsageError(str(exc)) from exc
    run_id = f"lt{int(time.time() * 1000):x}"
    out = out or Path("loadtest-results") / run_id
    with ExitStack() as stack:
        try:
            if gateway:
                target = Target(gateway, pg_dsn, 0, 0)
            else:
                target = stack.enter_context(
                    _local_target(topology_path, region, engine_workers, out)
                )
            cfg = RunConfig(
                target.gateway,
                out,
                profile,
                users,
                parse_duration(duration),
                spawn_rate,
                locust_workers,
                run_id,
                wl,
            )
            console.print(
                f"run {run_id}: {profile}, {users} users, {cfg.duration_s:.0f}s "
                f"against {target.gateway}; results in {out}"
            )
            code = run_locust(cfg, progress=console.print)
            if code != 0:
                raise click.ClickException(f"Locust exited {code}; see {out}/locust.log")
            summary = summarize(cfg, Slo(slo_p99_ms, slo_error_rate))
            export = _export(cfg, target, summary)
        except LoadTestError as exc:
            console.print(f"[red]run failed:[/] {exc}")
            raise SystemExit(2) from exc
    import json

    (out / "summary.json").write_text(json.dumps(summary.to_dict(), indent=1) + "\n")
    console.print(_verdict_table(summary))
    for v in summary.verdicts:
        mark = "[green]PASS[/]" if v.ok else "[red]FAIL[/]"
        console.print(f"{mark} {v.name}: {v.measured:.4g} (limit {v.limit:.4g})")
    console.print(
        f"CSV, HTML ({cfg.html}), summary.json"
        + (f", export ({export})" if export else "")
        + f" in {out}"
    )
    if not summary.ok:
        raise SystemExit(1)


_PEERS = {
    "raw": ("homeport.loadtest.peers.raw_peer", "RawContender"),
    "homeport-batch": ("homeport.loadtest.peers.homeport_peer", "HomeportBatch"),
    "homeport-sdk": ("homeport.loadtest.peers.homeport_peer", "HomeportSDK"),
    "homeport-unordered": ("homeport.loadtest.peers.homeport_peer", "HomeportUnordered"),
    "celery": ("homeport.loadtest.peers.celery_peer", "CeleryContender"),
    "rq": ("homeport.loadtest.peers.rq_peer", "RQContender"),
    "arq": ("homeport.loadtest.peers.arq_peer", "ArqContender"),
    "dramatiq": ("homeport.loadtest.peers.dramatiq_peer", "DramatiqContender"),
    "saq": ("homeport.loadtest.peers.saq_peer", "SaqContender"),
    "taskiq": ("homeport.loadtest.peers.taskiq_peer", "TaskiqContender"),
    "huey": ("homeport.loadtest.peers.huey_peer", "HueyContender"),
    "streaq": ("homeport.loadtest.peers.streaq_peer", "StreaqContender"),
}
_SLOW = ("rq", "arq", "streaq")  # 200-350 tasks/s: measured on fewer tasks (--slow-tasks)


@contextmanager
def _bench_servers(pg_dsn: str | None, workdir: Path, need_pg: bool) -> Iterator[tuple[str, str]]:
    """A Redis server of the bench's own (no persistence, no replicas; it is flushed between
    runs) and a record store (the given DSN, or a one-region local cluster's)."""
    import subprocess

    from homeport.core.security import run_plain
    from homeport.core.supervisor import Child
    from homeport.loadtest.stack import ROOT
    from homeport.regions.devcluster import ClusterSpec, DevCluster
    from homeport.regions.ports import PortPicker
    from homeport.regions.servers import redis_probe

    with ExitStack() as stack:
        port = PortPicker().take()
        argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(workdir)]  # fmt: skip
        server = Child.start("redis-server", argv, workdir / "redis.log", append=False)
        stack.callback(server.stop)
        server.wait_ready(lambda: redis_probe(port), 10, "listening")
        if need_pg and not pg_dsn:
            # Every server of the bench is then its own and plain: its processes must not
            # take a security file of the caller's cluster (TLS to a plain server).
            run_plain()
            state = Path(tempfile.mkdtemp(prefix="homeport-peers-"))
            state.chmod(0o755)
            stack.callback(shutil.rmtree, state, True)
            cluster = DevCluster(state / "cluster")
            with console.status("starting PostgreSQL (a one-region local cluster)") as status:
                # Plain, as the bench's own Redis: the contenders connect without
                # credentials (the homeport worker and gateway run with --insecure).
                spec = replace(ClusterSpec.default(1), insecure=True)
                pg_dsn = cluster.up(spec, progress=status.update).region("us-east").postgres
            stack.callback(cluster.down)
        if need_pg and pg_dsn:
            migrate = [sys.executable, "-m", "homeport", "db", "migrate", "--pg-dsn", pg_dsn]
            done = subprocess.run(migrate, cwd=ROOT, capture_output=True, text=True, timeout=60)
            if done.returncode:
                raise click.ClickException(f"`homeport db migrate` failed:\n{done.stderr[-2000:]}")
        yield f"redis://127.0.0.1:{port}/0", pg_dsn or ""


@click.command("peers")
@click.option(
    "--tasks",
    "n",
    type=int,
    default=20_000,
    show_default=True,
    help="No-op tasks per throughput run.",
)
@click.option(
    "--slow-tasks",
    type=int,
    default=2_000,
    show_default=True,
    help="Tasks per run for the slow queues (RQ, arq, streaQ).",
)
@click.option("--runs", type=int, default=3, show_default=True)
@click.option("--latency-tasks", type=int, default=500, show_default=True)
@click.option(
    "--latency-rate",
    type=float,
    default=100.0,
    show_default=True,
    help="Tasks/s of the light-load latency run.",
)
@click.option(
    "--only", default=",".join(_PEERS), show_default=True, help="Comma list of contenders."
)
@click.option("--pg-dsn", default=None, help="homeport's record store (else one is started).")
@out_dir_option("Directory for results.json, table.md, plot, logs.", Path("peers-bench"))
def peers_bench(
    n: int,
    slow_tasks: int,
    runs: int,
    latency_tasks: int,
    latency_rate: float,
    only: str,
    pg_dsn: str | None,
    out: Path,
) -> None:
    """homeport beside Celery, RQ, arq, Dramatiq, SAQ, taskiq, Huey, streaQ, raw Redis streams."""
    import importlib
    import json
    import os
    import platform

    from homeport.loadtest.peers.bench import Bench, results_json
    from homeport.loadtest.peers.report import markdown_table, plot

    chosen = [p.strip() for p in only.split(",") if p.strip()]
    unknown = [p for p in chosen if p not in _PEERS]
    if unknown:
        raise click.BadParameter(f"{unknown}: choose from {', '.join(_PEERS)}", param_hint="--only")
    out.mkdir(parents=True, exist_ok=True)
    need_pg = any(p.startswith("homeport") for p in chosen)
    with _bench_servers(pg_dsn, out, need_pg) as (redis_url, dsn):
        os.environ["HP_BENCH_REDIS"] = redis_url  # the peers' modules read it at import
        bench = Bench(redis_url, out, progress=console.print)
        results = []
        for key in chosen:
            module, attr = _PEERS[key]
            cls = getattr(importlib.import_module(module), attr)
            contender = cls(redis_url, dsn) if key.startswith("homeport") else cls(redis_url)
            tasks = slow_tasks if key in _SLOW else n
            results.append(bench.measure(contender, tasks, runs, latency_tasks, latency_rate))
    machine = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    (out / "results.json").write_text(
        json.dumps({"machine": machine, "runs": runs, "results": results_json(results)}, indent=1)
    )
    table = markdown_table(results)
    (out / "table.md").write_text(table + "\n")
    plot(results, out / "peers.png", f"no-op tasks, one worker process, same Redis ({machine})")
    click.echo(table)
    for r in results:
        for change in r.changed:
            click.echo(f"- {r.name}: {change}")
