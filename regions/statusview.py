"""`homeport region status`: every home's route, mirror lag, next failover target and
re-protection, read from etcd and Redis (`region_rows`), and the tables printed from them
(`render_region_status`), including the failover history with each capacity check."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from homeport.regions import history, protection
from homeport.regions.control import ControlPlane
from homeport.regions.mirror import measure
from homeport.regions.routing import next_standby
from homeport.regions.topology import Topology
from redis.exceptions import RedisError
from rich.console import Console
from rich.table import Table

HISTORY_SHOWN = 10  # failover history records `region status` prints, newest first


def _history_table(events: list[dict[str, Any]]) -> Table:
    table = Table(title="failover history (newest first)")
    for col in ("at", "home", "change", "epoch", "took", "reason", "capacity check"):
        table.add_column(col)
    for e in events:
        table.add_row(
            time.strftime("%H:%M:%S", time.localtime(e["at"])), e["home"],
            f"{e['kind']} {e['from_region']} -> {e['to']}", f"{e['old_epoch']} -> {e['epoch']}",
            f"{e['seconds']:.2f} s", e["reason"], _capacity_cell(e.get("capacity")),
        )  # fmt: skip
    return table


def _capacity_cell(c: dict[str, Any] | None) -> str:
    if c is None:
        return "-"
    if c["verdict"] == "unknown":
        return f"unchecked: {c['reason']}"
    head = f"{c['verdict']}: {c['rate_per_s']:.0f}/s on {c['workers']} workers of {c['standby']}"
    if c["verdict"] == "ok":
        return head
    return f"[yellow]{head}[/]; {c['reason']}; ordered {c['workers_ordered']} workers"


def _protection_cell(p: dict[str, Any] | None) -> str:
    if p is None:
        return "-"
    since = time.strftime("%H:%M:%S", time.localtime(p["at"]))
    return f"spare of {p['region']} ({p['spare']}), epoch {p['epoch']}, {p['state']} since {since}"


async def region_rows(topo: Topology) -> list[dict[str, Any]]:
    cp = await ControlPlane.open(topo, "client")
    try:
        table = await cp.routing.bootstrap(topo)
        protections = await protection.load(cp)
        past = await history.events(cp.etcd, topo.etcd_prefix)
        rows = []
        for home in topo.region_names():
            route = table.route(home)
            row: dict[str, Any] = asdict(route) | {"lag_bytes": None, "lag_seconds": None}
            target = next_standby(topo, route)
            row["next_failover"] = f"{target[0]} ({target[1]})" if target else None
            lent = protections.get(home)
            row["protection"] = asdict(lent) if lent is not None else None
            row["history"] = [asdict(e) for e in past if e.home == home][:HISTORY_SHOWN]
            if route.copy == "primary" and topo.region(home).standby:
                try:
                    lag = await measure(cp.primary(home), cp.mirror(home), home, route.serving)
                    row |= {"lag_bytes": lag.bytes, "lag_seconds": lag.seconds}
                except (RedisError, OSError):
                    pass
            rows.append(row)
        return rows
    finally:
        await cp.close()


def render_region_status(rows: list[dict[str, Any]]) -> None:
    """The routing table, then the newest failover history records."""
    table = Table(title="routing table")
    for col in ("home", "served by", "epoch", "copy", "state", "mirror lag", "changed"):
        table.add_column(col)
    table.add_column("next failover")
    table.add_column("re-protected by")
    for r in rows:
        lag = "-" if r["lag_bytes"] is None else f"{r['lag_bytes']} B / {r['lag_seconds']:.2f} s"
        changed = time.strftime("%H:%M:%S", time.localtime(r["changed_at"]))
        table.add_row(
            r["home"], r["serving"], str(r["epoch"]), r["copy"], r["state"], lag,
            f"{changed} ({r['reason']})", r["next_failover"] or "-",
            _protection_cell(r["protection"]),
        )  # fmt: skip
    Console().print(table)
    events = sorted((e for r in rows for e in r["history"]), key=lambda e: -e["at"])
    if events:
        Console().print(_history_table(events[:HISTORY_SHOWN]))
