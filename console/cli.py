"""`homeport console`: serve the web console of a deployment."""

from __future__ import annotations

import logging
from pathlib import Path

import click
from homeport.console.settings import SettingsError, from_env
from homeport.regions.cli import state_dir_option, topology_option
from homeport.regions.devcluster import DevCluster


@click.command("console")
@topology_option
@state_dir_option
@click.option("--region", default=None, help="Region the console runs in (asked first).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8470, show_default=True, help="Port to listen on (0: any).")
@click.option("--token", default=None, help="Gateway bearer token [env HOMEPORT_TOKEN].")
@click.option(
    "--admin-token",
    default=None,
    help="Admin token: enables admin actions [env HOMEPORT_ADMIN_TOKEN].",
)
@click.option(
    "--reports",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("reports"),
    show_default=True,
    help="Folder of chaos game-day reports.",
)
@click.option("--refresh-s", default=2.0, show_default=True, help="Seconds between refreshes.")
def console(
    topology_path: Path | None,
    state_dir: Path,
    region: str | None,
    host: str,
    port: int,
    token: str | None,
    admin_token: str | None,
    reports: Path,
    refresh_s: float,
) -> None:
    """Serve a web console that sees and steers every region (see docs/console.md).

    Without a token it is read-only; with --admin-token, requeue, promote and failback
    are offered, each asking for the admin token again and a confirmation."""
    from aiohttp import web
    from homeport.console.app import build_app

    topology = topology_path or DevCluster(state_dir).topology_path
    if not topology.exists():
        raise click.ClickException(
            f"no topology at {topology}; start a cluster with `homeport dev up` or pass --topology"
        )
    try:
        settings = from_env(
            topology, region=region, host=host, port=port, token=token,
            admin_token=admin_token, reports=reports, refresh_s=refresh_s,
        )  # fmt: skip
    except SettingsError as exc:
        raise click.BadParameter(str(exc)) from exc
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    mode = "admin" if settings.admin else "read-only" if settings.read_only else "operator"
    click.echo(f"homeport console ({mode}) on http://{host}:{port}/", err=True)
    web.run_app(build_app(settings), host=host, port=port, print=None, access_log=None)
