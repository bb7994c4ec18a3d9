"""`homeport observe`: generate the dashboards, check the queries, render the overview.

The Grafana builder and the PromQL parser come with the `observe` extra; they are
imported inside the commands so a plain install's CLI still starts without them.
"""

from __future__ import annotations

import time
from pathlib import Path

import click
from homeport.core.extras import require

from homeport.options import out_dir_option


@click.group("observe")
def observe() -> None:
    """Dashboards and rules of docs/observability.md."""


@observe.command("dashboards")
@out_dir_option("Directory for the dashboards' JSON files.", Path("deploy/grafana"))
def dashboards(out: Path) -> None:
    """Write the Grafana dashboards' JSON (generated; do not edit it by hand)."""
    require("observe", "grafana_foundation_sdk")
    from homeport.observe.dashboards import write_all

    for path in write_all(out):
        click.echo(f"wrote {path}")


@observe.command("check")
def check() -> None:
    """Parse every PromQL expression of the rules and dashboards with promtool."""
    from homeport.observe.queries import expressions, promtool_errors

    found = expressions()
    errors = promtool_errors(found)
    for where, error in errors.items():
        click.echo(f"{where}: {error}", err=True)
    if errors:
        raise click.ClickException(f"{len(errors)} of {len(found)} expressions do not parse")
    click.echo(f"{len(found)} expressions parse")


@observe.command("render")
@click.option("--prometheus", "url", required=True, help="e.g. http://127.0.0.1:9090")
@click.option("--minutes", default=5.0, show_default=True, help="How far back to draw.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("docs/observability-overview.png"),
    show_default=True,
)
def render(url: str, minutes: float, out: Path) -> None:
    """Draw the overview dashboard's panels from a running Prometheus into a PNG."""
    require("observe", "matplotlib")
    from homeport.observe.panels import OVERVIEW
    from homeport.observe.render import render as draw

    now = time.time()
    drawn = draw(OVERVIEW, url, out, now - 60 * minutes, now)
    if not drawn:
        raise click.ClickException(f"{url} returned no data for any panel")
    click.echo(f"wrote {out} ({drawn} series)")
