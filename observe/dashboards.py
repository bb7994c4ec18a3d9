"""Grafana dashboards as code, built with grafana-foundation-sdk from `observe.panels`.

`homeport observe dashboards --out deploy/grafana/` writes them; the JSON in the
repository is that output, and a test regenerates it and compares, so nobody edits the
JSON by hand. Every query names the data source through the variable `datasource`, so
the dashboards import into any Grafana with a Prometheus data source.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.builders import prometheus as gp
from grafana_foundation_sdk.builders import timeseries as gt
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef, GridPos
from homeport.observe.panels import OVERVIEW, REGION, Panel, Row

_DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
_W, _H = 8, 8  # three panels per row of the 24-column grid


def _panel(spec: Panel, ident: int, x: int, y: int) -> gt.Panel:
    panel = (
        gt.Panel()
        .id(ident)
        .title(spec.title)
        .description(spec.description)
        .unit(spec.unit)
        .datasource(_DS)
        .grid_pos(GridPos(h=_H, w=_W, x=x, y=y))
    )
    for ref, query in zip("ABCDEFGH", spec.queries, strict=False):
        panel = panel.with_target(
            gp.Dataquery().expr(query.expr).legend_format(query.legend).ref_id(ref).datasource(_DS)
        )
    return panel


def _build(title: str, uid: str, rows: tuple[Row, ...], variables: list[Any]) -> dict[str, Any]:
    board = (
        gd.Dashboard(title)
        .uid(uid)
        .tags(["homeport", "generated"])
        .refresh("10s")
        .time("now-30m", "now")
        .timezone("browser")
        .with_variable(gd.DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
    )
    for variable in variables:
        board = board.with_variable(variable)
    y, ident = 0, 0
    for row in rows:
        ident += 1
        board = board.with_row(gd.Row(row.title).id(ident).grid_pos(GridPos(h=1, w=24, x=0, y=y)))
        y += 1
        for i, spec in enumerate(row.panels):
            ident += 1
            board = board.with_panel(_panel(spec, ident, (i % 3) * _W, y + (i // 3) * _H))
        y += _H * ((len(row.panels) + 2) // 3)
    encoded: dict[str, Any] = json.loads(
        JSONEncoder(sort_keys=True, indent=2).encode(board.build())
    )
    return encoded


def overview() -> dict[str, Any]:
    """Every region at once: routing and epochs, submit rate and p99, backlog age, mirror
    lag, failovers, and the things that go wrong."""
    return _build("homeport / overview", "homeport-overview", OVERVIEW, [])


def region() -> dict[str, Any]:
    """One home region in detail, chosen with the `region` variable."""
    choice = (
        gd.QueryVariable("region")
        .label("Home region")
        .datasource(_DS)
        .query("label_values(homeport_route_epoch, home)")
    )
    return _build("homeport / region", "homeport-region", REGION, [choice])


DASHBOARDS = {"overview.json": overview, "region.json": region}


def render_all() -> dict[str, str]:
    """File name -> JSON text of every dashboard, exactly as committed."""
    return {
        name: json.dumps(build(), indent=2, sort_keys=True) + "\n"
        for name, build in DASHBOARDS.items()
    }


def write_all(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_all().items():
        path = out / name
        path.write_text(text)
        written.append(path)
    return written
