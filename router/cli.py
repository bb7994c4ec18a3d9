"""Command-line face of the gateway and the SDK: `homeport gateway`, `homeport submit`,
`homeport task get|cancel|watch`, `homeport dead list|requeue`.

Client commands find the gateway in `--gateway` (env `HOMEPORT_GATEWAY`) and send the
token in `--token` (env `HOMEPORT_TOKEN`). Output is a table for people, or JSON with
`--json` for scripts. Exit status: 0 done, 1 refused by the gateway (message on stderr),
2 bad usage.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click
from homeport.core import logs
from homeport.core.metrics import Metrics
from homeport.core.processes import processes_option
from homeport.core.security import insecure_option, start_role_or_usage
from homeport.core.settings import Settings
from homeport.regions.topology import Topology, load_topology
from homeport.router.client import AsyncClient
from homeport.router.errors import GatewayError
from homeport.router.gateway import Gateway
from homeport.router.routed import RoutedServing
from homeport.router.settings import SettingsError, load_settings
from homeport.router.tls import ClientTls
from homeport.router.views import NewTask
from rich.console import Console
from rich.table import Table

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
_out = Console()
_err = Console(stderr=True)


# --- the gateway server ---------------------------------------------------------------


def _engine_overrides(topology: Topology | None, region: str | None) -> dict[str, Any]:
    if topology is None or region is None:
        return {"region": region}
    r = topology.region(region)
    primary = r.redis.primary or r.redis.nodes[0]
    redis = topology.dial(region, region, "redis", primary)
    out: dict[str, Any] = {
        "region": region,
        "partitions": r.partitions,
        "redis_url": f"redis://{redis}/0",
        "redis_cluster": r.redis.mode == "cluster",
        "pg_dsn": r.postgres,
    }
    if r.admin:
        out["admin_host"], _, port = r.admin.rpartition(":")
        out["admin_port"] = int(port)
    return out


@click.command("gateway")
@click.option("--config", type=click.Path(path_type=Path), help="Engine settings YAML.")
@click.option("--gateway-config", type=click.Path(path_type=Path), help="Gateway YAML.")
@click.option(
    "--topology",
    type=click.Path(path_type=Path, exists=True),
    help="Topology file: region's Redis, PostgreSQL, partitions, addresses.",
)
@click.option("--region", help="Home region to serve (with --topology: a region of it).")
@click.option("--listen", help="host:port to serve gRPC on (port 0: any free port).")
@click.option("--advertise", help="host:port clients should dial (default: --listen).")
@click.option("--redis-url", help="Region Redis URL (without --topology).")
@click.option("--pg-dsn", help="Region PostgreSQL DSN (without --topology).")
@click.option("--partitions", type=int, help="Partitions of the region (without --topology).")
@click.option("--admin-port", type=int, help="Admin HTTP port (0: any, -1: none).")
@click.option(
    "--metrics-targets-dir",
    envvar="HOMEPORT_METRICS_TARGETS_DIR",
    help="Announce /metrics here for Prometheus file discovery (docs/observability.md).",
)
@click.option("--token", "tokens", multiple=True, help="Accepted bearer token (repeatable).")
@click.option("--admin-token", "admin_tokens", multiple=True, help="Admin bearer token.")
@click.option("--tls-cert", type=click.Path(path_type=Path, exists=True))
@click.option("--tls-key", type=click.Path(path_type=Path, exists=True))
@click.option(
    "--tls-client-ca",
    type=click.Path(path_type=Path, exists=True),
    help="CA for client certificates: turns on mutual TLS.",
)
@insecure_option("gateway")
@click.option(
    "--routing",
    type=click.Choice(["static", "etcd"]),
    default="static",
    show_default=True,
    help="static: serve --region's keys only. etcd (needs --topology): follow the routing "
    "table, place keys over all regions, hold an etcd lease as the write fence.",
)
@processes_option(
    "Gateway processes sharing the --listen port (SO_REUSEPORT; the kernel spreads "
    "connections over them). Port 0 picks one free port for all. 1 = this process only."
)
def gateway(
    config: Path | None,
    gateway_config: Path | None,
    topology: Path | None,
    region: str | None,
    listen: str | None,
    advertise: str | None,
    redis_url: str | None,
    pg_dsn: str | None,
    partitions: int | None,
    admin_port: int | None,
    metrics_targets_dir: str | None,
    tokens: tuple[str, ...],
    admin_tokens: tuple[str, ...],
    tls_cert: Path | None,
    tls_key: Path | None,
    tls_client_ca: Path | None,
    routing: str,
    insecure: bool,
    processes: int,
) -> None:
    """Serve the gRPC API of one home region until SIGTERM (graceful) or SIGINT."""
    logs.configure()
    start_role_or_usage("gateway", topology, insecure)
    topo = load_topology(topology) if topology else None
    overrides = _engine_overrides(topo, region)
    overrides.update(
        {
            k: v
            for k, v in dict(
                redis_url=redis_url,
                pg_dsn=pg_dsn,
                partitions=partitions,
                admin_port=admin_port,
                metrics_targets_dir=metrics_targets_dir,
            ).items()
            if v is not None
        }
    )
    engine = Settings.load(config, **overrides)
    if listen is None and topo is not None:
        listen = topo.region(engine.region).gateway
    if processes > 1 and listen is not None:
        listen = _shared_listen(listen)
    try:
        settings = load_settings(
            gateway_config,
            {
                "listen": listen,
                "advertise": advertise,
                "tokens": tokens or None,
                "admin_tokens": admin_tokens or None,
                "tls_cert": tls_cert,
                "tls_key": tls_key,
                "tls_client_ca": tls_client_ca,
            },
        )
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None
    # uvloop: about a fifth more gRPC calls/s on this hardware (docs/gateway.md).
    if routing == "etcd" and topo is None:
        raise click.UsageError("--routing etcd needs --topology (the etcd endpoints live there)")

    def one(index: int) -> None:
        eng = engine
        if processes > 1 and eng.admin_port > 0:
            eng = dataclasses.replace(eng, admin_port=eng.admin_port + index)
        serving = None
        metrics = Metrics()
        if routing == "etcd" and topo is not None:
            serving = RoutedServing(topo, eng.region, eng, metrics)
        gw = Gateway(
            eng,
            settings,
            topology=topo,
            serving=serving,
            engine_metrics=metrics,
            reuse_port=processes > 1,
        )
        logs.run_server(_serve(gw))

    if processes == 1:
        one(0)
        return
    from homeport.core.processes import run_processes

    raise SystemExit(run_processes(processes, one))


def _shared_listen(listen: str) -> str:
    """`listen` with port 0 replaced by one free port, so N processes share it."""
    import socket

    host, _, port = listen.rpartition(":")
    if port != "0":
        return listen
    with socket.socket(socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET) as sock:
        sock.bind((host.strip("[]"), 0))
        return f"{host}:{sock.getsockname()[1]}"


async def _serve(gw: Gateway) -> None:
    await gw.start()
    gw.stop_on_signals()
    admin = f", admin on {gw.engine.admin_host}:{gw.admin_port}" if gw.admin_port else ""
    click.echo(f"gateway {gw.engine.region} listening on {gw.address}{admin}", err=True)
    await gw.wait()


# --- client commands ------------------------------------------------------------------


@dataclasses.dataclass
class _ClientOptions:
    gateway: str
    token: str | None
    tls: ClientTls | None
    timeout: float
    as_json: bool


def _client_options(fn: F) -> F:
    options = [
        click.option(
            "--gateway",
            envvar="HOMEPORT_GATEWAY",
            default="127.0.0.1:50051",
            show_default=True,
            help="Gateway host:port (env HOMEPORT_GATEWAY).",
        ),
        click.option("--token", envvar="HOMEPORT_TOKEN", help="Bearer token (env HOMEPORT_TOKEN)."),
        click.option(
            "--tls-ca",
            type=click.Path(path_type=Path, exists=True),
            help="Dial with TLS, trusting this CA bundle.",
        ),
        click.option(
            "--tls-cert",
            type=click.Path(path_type=Path, exists=True),
            help="Client certificate for mutual TLS.",
        ),
        click.option("--tls-key", type=click.Path(path_type=Path, exists=True)),
        click.option(
            "--timeout", type=float, default=10.0, show_default=True, help="Seconds per attempt."
        ),
        click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _opts(kw: dict[str, Any]) -> _ClientOptions:
    ca, cert, key = kw.pop("tls_ca"), kw.pop("tls_cert"), kw.pop("tls_key")
    tls = ClientTls(ca=ca, cert=cert, key=key) if (ca or cert) else None
    return _ClientOptions(
        kw.pop("gateway"), kw.pop("token"), tls, kw.pop("timeout"), kw.pop("as_json")
    )


def _call(opts: _ClientOptions, fn: Callable[[AsyncClient], Awaitable[T]]) -> T:
    async def go() -> T:
        async with AsyncClient(
            opts.gateway, token=opts.token, tls=opts.tls, timeout=opts.timeout
        ) as client:
            return await fn(client)

    try:
        return _run(go())
    except GatewayError as exc:
        _err.print(f"[red]refused[/red]: {exc}")
        for field, reason in exc.violations:
            _err.print(f"  field {field}: {reason}")
        for name, value in sorted(exc.metadata.items()):
            _err.print(f"  {name} = {value}")
        sys.exit(1)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def _show(opts: _ClientOptions, value: Any, title: str) -> None:
    if opts.as_json:
        click.echo(json.dumps(_jsonable(value), indent=2))
        return
    rows = value if isinstance(value, list) else [value]
    data = [_jsonable(r) for r in rows]
    table = Table(title=title)
    columns = [k for k in (data[0] if data else {}) if k not in ("attempts", "payload")]
    for column in columns:
        table.add_column(column)
    for row in data:
        table.add_row(*(str(row.get(c, "")) for c in columns))
    _out.print(table)
    for row in data:
        if row.get("attempts"):
            _show_attempts(row["attempts"])


def _show_attempts(attempts: list[dict[str, Any]]) -> None:
    table = Table(title="attempts")
    for column in attempts[0]:
        table.add_column(column)
    for a in attempts:
        table.add_row(*(str(v) for v in a.values()))
    _out.print(table)


@click.command("submit")
@click.argument("kind")
@click.argument("partition_key")
@click.option("--payload", default="", help="Payload as text (UTF-8).")
@click.option("--payload-file", type=click.File("rb"), help="Payload from a file ('-': stdin).")
@click.option("--id", "task_id", help="Task id (default: a new ULID); reuse it to retry.")
@click.option("--durability", type=click.Choice(["LOCAL", "REGION", "GLOBAL"]))
@click.option("--max-attempts", type=int)
@click.option("--delay", type=float, help="Run no earlier than this many seconds from now.")
@_client_options
def submit(
    kind: str,
    partition_key: str,
    payload: str,
    payload_file: Any,
    task_id: str | None,
    durability: str | None,
    max_attempts: int | None,
    delay: float | None,
    **kw: Any,
) -> None:
    """Submit one task of KIND for PARTITION_KEY."""
    opts = _opts(kw)
    data = payload_file.read() if payload_file else payload.encode()
    when = None if delay is None else dt.datetime.now(dt.UTC).timestamp() + delay
    task = NewTask(
        kind,
        partition_key,
        data,
        durability=durability,
        max_attempts=max_attempts,
        scheduled_at=when,
    )
    if task_id:
        task = dataclasses.replace(task, id=task_id)
    _show(opts, _call(opts, lambda c: c.submit_task(task)), "submitted")


@click.group("task")
def task() -> None:
    """Read, cancel or follow one task."""


@task.command("get")
@click.argument("task_id")
@_client_options
def task_get(task_id: str, **kw: Any) -> None:
    """Status, attempts and outcome of TASK_ID."""
    opts = _opts(kw)
    _show(opts, _call(opts, lambda c: c.get(task_id)), f"task {task_id}")


@task.command("cancel")
@click.argument("task_id")
@click.option(
    "--key",
    "partition_key",
    default="",
    help="Partition key (optional: goes straight to its home).",
)
@_client_options
def task_cancel(task_id: str, partition_key: str, **kw: Any) -> None:
    """Cancel TASK_ID if it has not started."""
    opts = _opts(kw)
    _show(opts, _call(opts, lambda c: c.cancel(task_id, partition_key=partition_key)), "cancel")


@task.command("watch")
@click.argument("task_id")
@_client_options
def task_watch(task_id: str, **kw: Any) -> None:
    """Print each status change of TASK_ID until it finishes (or --timeout passes)."""
    opts = _opts(kw)

    async def follow(client: AsyncClient) -> None:
        async for event in client.watch(task_id, timeout=opts.timeout):
            if opts.as_json:
                click.echo(json.dumps(_jsonable(event)))
            else:
                _out.print(
                    f"{event.at:%H:%M:%S.%f}  {event.status:<10} attempts={event.attempts}"
                    f"  {event.error}"
                )

    _call(opts, follow)


@click.group("dead")
def dead() -> None:
    """Dead-lettered tasks (admin token needed when auth is on)."""


@dead.command("list")
@click.option("--partition", default="", help="e.g. us-east/3 (default: all served).")
@click.option("--limit", type=int, default=100, show_default=True)
@_client_options
def dead_list(partition: str, limit: int, **kw: Any) -> None:
    """List dead-lettered tasks."""
    opts = _opts(kw)
    _show(opts, _call(opts, lambda c: c.dead_letters(partition, limit)), "dead letters")


@dead.command("requeue")
@click.argument("task_id")
@click.option("--key", "partition_key", default="", help="Partition key (narrows the search).")
@_client_options
def dead_requeue(task_id: str, partition_key: str, **kw: Any) -> None:
    """Put dead task TASK_ID back in its stream."""
    opts = _opts(kw)
    partition = _call(opts, lambda c: c.requeue(task_id, partition_key=partition_key))
    _show(opts, {"task_id": task_id, "requeued": True, "partition": partition}, "requeued")


# `homeport bench gateway`: attached to the engine's `bench` group where the CLI is wired.
from homeport.router.bench import gateway_bench as gateway_bench  # noqa: E402
