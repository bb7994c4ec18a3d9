"""The engine's commands, mounted under `homeport` by homeport/cli.py.

    homeport worker --app pkg.module:app [--burst] ...   run a worker of one region
    homeport manager ...                                  run a standalone region manager
    homeport db migrate --pg-dsn ...                      apply core/migrations/*.sql
    homeport bench engine ...                             engine throughput vs raw Redis

Every option falls back to the settings file (`--config` / HOMEPORT_CONFIG) and
`HOMEPORT_*` environment variables (see core/settings.py).
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Coroutine
from typing import Any

import click
from homeport.core import logs
from homeport.core.app import App
from homeport.core.config import SettingsError
from homeport.core.processes import processes_option
from homeport.core.security import insecure_option, start_role_or_usage
from homeport.core.settings import Settings


def _common(fn: Callable[..., Any]) -> Callable[..., Any]:
    opts = [
        click.option(
            "--config",
            type=click.Path(exists=True, dir_okay=False),
            default=None,
            help="YAML settings file (else HOMEPORT_CONFIG).",
        ),
        click.option("--region", default=None, help="Region served, e.g. us-east."),
        click.option("--partitions", type=int, default=None, help="Partitions P of the region."),
        click.option("--redis-url", default=None, help="Region store URL (a seed for a cluster)."),
        click.option(
            "--redis-cluster/--redis-single",
            default=None,
            help="The region store is a Redis Cluster.",
        ),
        click.option("--pg-dsn", default=None, help="Record store DSN."),
        click.option("--lease-ttl-s", type=float, default=None, help="Lease TTL, seconds."),
        click.option("--heartbeat-s", type=float, default=None, help="Heartbeat, seconds."),
        click.option(
            "--admin-port", type=int, default=None, help="Admin HTTP port (0 any free, -1 none)."
        ),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _settings(config: str | None, **overrides: Any) -> Settings:
    """Settings, or exit 2 with the error naming the field, the value and its variable."""
    try:
        return Settings.load(config, **overrides)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None


def _run(main: Coroutine[Any, Any, None], use_uvloop: bool = True) -> None:
    logs.run_server(main, use_uvloop)


def load_app(ref: str) -> App:
    """The `App` named by `pkg.module:attr`, importable from the current directory (as
    with uvicorn or celery: console scripts do not put it on sys.path)."""
    import os
    import sys

    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module, _, attr = ref.partition(":")
    try:
        obj = getattr(importlib.import_module(module), attr or "app")
    except ImportError as exc:
        raise click.BadParameter(
            f"cannot import {module!r}: {exc}. Give the app as pkg.module:attr, importable "
            f"from the current directory ({os.getcwd()}) or the virtualenv",
            param_hint="--app",
        ) from exc
    except AttributeError as exc:
        raise click.BadParameter(
            f"module {module!r} has no attribute {attr or 'app'!r}: name the App object "
            "after the colon, as pkg.module:attr",
            param_hint="--app",
        ) from exc
    if not isinstance(obj, App):
        raise click.BadParameter(
            f"{ref} is a {type(obj).__name__}, not a homeport App", param_hint="--app"
        )
    return obj


@click.command("worker")
@click.option("--app", "app_ref", required=True, help="The App to run, as pkg.module:attr.")
@_common
@click.option(
    "--concurrency", type=int, default=None, help="Most handlers running at once (slots)."
)
@click.option(
    "--prefetch",
    type=int,
    default=None,
    help="Entries read ahead beyond the slots, so a freed slot's next task is already "
    "fetched (default 256; 0 = read only as tasks finish).",
)
@click.option("--max-deliveries", type=int, default=None, help="Poison threshold.")
@click.option("--shutdown-grace-s", type=float, default=None, help="Grace after SIGTERM.")
@click.option("--burst", is_flag=True, help="Drain the region, then exit.")
@click.option("--manager/--no-manager", default=True, help="Also stand as region manager.")
@click.option("--uvloop/--no-uvloop", default=True, help="Run on uvloop.")
@insecure_option("worker")
@click.option(
    "--wait-primary-epoch",
    type=int,
    default=0,
    help="Park as a warm standby: start only once the store is a primary at this epoch "
    "or later (a promoted mirror). 0 = start at once.",
)
@click.option(
    "--reserve",
    is_flag=True,
    help="Boot (imports, connections), then wait idle, holding no partition, until the "
    "line `go` arrives on stdin (after --wait-primary-epoch's promotion, if given): a "
    "prepared worker the agent starts on a scale order without a process boot. End of "
    "stdin without `go` = exit.",
)
@click.option(
    "--worker-id",
    default=None,
    help="Unique id of this worker process in its region (default: host:pid:random). "
    "A supervisor that names its workers can evict a dead one's leases at once.",
)
@click.option(
    "--no-records",
    is_flag=True,
    help="Run without a record store, on purpose: tasks run but GetTask shows no "
    "attempts, results or errors. Without it a worker refuses to start with no --pg-dsn.",
)
@processes_option(
    "Worker processes of this App, forked from this one (one per core uses every "
    "core; see docs/benchmarks.md). Each is a worker of its own, with its own partitions."
)
def worker(
    app_ref: str,
    config: str | None,
    burst: bool,
    manager: bool,
    uvloop: bool,
    worker_id: str | None,
    wait_primary_epoch: int,
    reserve: bool,
    no_records: bool,
    insecure: bool,
    processes: int,
    **overrides: Any,
) -> None:
    """Run a worker: consume the partitions the region manager assigns to it.

    Its credentials come from the `security` section of the file named by
    HOMEPORT_SECURITY_FILE (the agent that starts it sets it; docs/security.md)."""

    from homeport.core.worker import Worker, wait_for_go, wait_for_promotion

    logs.configure()
    start_role_or_usage("worker", None, insecure)
    app = load_app(app_ref)
    settings = _settings(config, **overrides)
    settings = _records_choice(settings, no_records)

    def one(index: int) -> None:
        s, wid = settings, worker_id
        if processes > 1:
            # Each child needs its own admin port (a fixed one is offset by the index)
            # and worker id; partitions are balanced over the children by the manager.
            if s.admin_port > 0:
                s = s.but(admin_port=s.admin_port + index)
            wid = f"{worker_id}/{index}" if worker_id else None

        async def main() -> None:
            w = Worker(app, s, with_manager=manager, worker_id=wid)
            parked_s = 0.0
            if wait_primary_epoch > 0 or reserve:
                await w.prepare()  # needs no primary: done while parked
            if wait_primary_epoch > 0:
                parked_s = await wait_for_promotion(s, wait_primary_epoch)
            if reserve:
                waited = await wait_for_go()
                if waited is None:  # the agent is gone, or dropped its reserve
                    await w.shutdown(graceful=False)
                    return
                parked_s += waited
            await w.start()
            w.record_boot(parked_s)
            click.echo(
                f"worker {w.worker_id} region={s.region} admin_port={w.admin_port}", err=True
            )
            await w.run(burst=burst, install_signals=True)

        _run(main(), uvloop)

    if processes == 1:
        one(0)
        return
    from homeport.core.processes import run_processes

    raise SystemExit(run_processes(processes, one))


def _records_choice(settings: Settings, no_records: bool) -> Settings:
    """A worker records every task unless told otherwise: no record store and no
    `--no-records` is a refusal, not a worker that silently drops every record."""
    if no_records:
        return settings.but(pg_dsn="")
    if not settings.pg_dsn:
        raise click.UsageError(
            "no record store: pass --pg-dsn (or set HOMEPORT_PG_DSN, or pg_dsn in --config) "
            "so task records are written, or --no-records to run without them on purpose",
            ctx=click.get_current_context(),
        )
    return settings


@click.command("manager")
@_common
@click.option("--app", "app_ref", default=None, help="App whose periodic tasks to fire.")
def manager(app_ref: str | None, config: str | None, **overrides: Any) -> None:
    """Run a standalone region manager (assignment, periodic tasks) until SIGTERM."""
    import os
    import signal

    from homeport.core.admin import AdminServer
    from homeport.core.broker import Broker
    from homeport.core.manager import Manager
    from homeport.core.metrics import Metrics

    settings = _settings(config, **overrides)
    app = load_app(app_ref) if app_ref else None

    async def main() -> None:
        broker = Broker.from_settings(settings)
        await broker.connect()
        metrics = Metrics()
        mgr = Manager(broker, settings, metrics, f"manager:{os.getpid()}", app)
        admin = AdminServer(
            metrics,
            status=lambda: {"role": "manager", "leader": mgr.is_leader},
            healthy=lambda: mgr.running,
            ready=lambda: True,
            host=settings.admin_host,
            port=max(0, settings.admin_port),
        )
        port = await admin.start()
        click.echo(f"manager region={settings.region} admin_port={port}", err=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        mgr.start()
        await stop.wait()
        await mgr.stop()
        if mgr.is_leader:
            await mgr.resign()
        await admin.stop()
        await broker.close()

    _run(main())


@click.group("db")
def db() -> None:
    """The region's PostgreSQL record store."""


@db.command("migrate")
@click.option("--config", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--pg-dsn", default=None, help="Record store DSN (else settings).")
def migrate(config: str | None, pg_dsn: str | None) -> None:
    """Apply the migrations in core/migrations that are not applied yet."""
    from homeport.core.store import RecordStore

    settings = _settings(config, pg_dsn=pg_dsn)
    if not settings.pg_dsn:
        raise click.UsageError("no record store: pass --pg-dsn or set HOMEPORT_PG_DSN")

    async def main() -> None:
        store = await RecordStore.connect(settings.pg_dsn)
        try:
            applied = await store.migrate()
        finally:
            await store.close()
        click.echo(f"applied: {', '.join(applied)}" if applied else "up to date")

    asyncio.run(main())


@click.group("bench")
def bench() -> None:
    """Benchmarks (measurements, not tests)."""


def _mount_bench() -> None:
    from homeport.core.bench import engine
    from homeport.core.drain_bench import drain

    bench.add_command(engine)
    bench.add_command(drain)


_mount_bench()


if __name__ == "__main__":
    # `python -m homeport.core.cli worker ...`: how tests start real worker processes.
    cli = click.Group(commands=[worker, manager, db, bench])
    cli()
