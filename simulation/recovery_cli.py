"""`homeport plan rpo` and `homeport plan rto`: what a region loss costs, predicted.

homeport plan rpo --latency 50ms --base 5ms --rate 30 --run 100ms --link-dies
homeport plan rto --fault region --promotion 170ms --rate 30 --measured 3.0 --measured 3.4

`rpo` is the model of `regions.rpo` (the one the game-day checker judges by, fed there
with the run's own measurements); `rto` the Monte Carlo of `simulation.rto`.
"""

from __future__ import annotations

import statistics
from typing import Any

import click
from homeport.regions.rpo import MirrorDelay
from homeport.regions.rpo import predict as predict_rpo
from homeport.router.client import RetryPolicy
from homeport.simulation.durations import DURATION, format_duration
from homeport.simulation.render import emit
from homeport.simulation.rto import RtoParams
from homeport.simulation.rto import predict as predict_rto
from rich.console import Console
from rich.table import Table

TOLERANCE = 0.20  # the median the issue asks to match: within 20 %


@click.command("rpo", context_settings={"show_default": True})
@click.option("--latency", default="0ms", type=DURATION, help="Mirror link one-way latency.")
@click.option("--jitter", default="0ms", type=DURATION, help="Half-width of its jitter.")
@click.option(
    "--base",
    multiple=True,
    default=("5ms",),
    type=DURATION,
    help="Base replication delay (repeat for samples): the mirror's round trip on an "
    "unloaded link, e.g. GLOBAL minus LOCAL submit latency.",
)
@click.option("--rate", type=float, required=True, help="LOCAL+REGION submits/s of the home.")
@click.option(
    "--run",
    multiple=True,
    type=DURATION,
    help="Ack -> end of first run (repeat for samples); none: tasks never finish first.",
)
@click.option(
    "--link-dies/--link-survives",
    default=True,
    help="Whether the mirror link dies with the home (bytes in flight lost) or delivers "
    "what it carries (then only the base delay exposes writes).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def rpo_command(
    latency: float,
    jitter: float,
    base: tuple[float, ...],
    rate: float,
    run: tuple[float, ...],
    link_dies: bool,
    as_json: bool,
) -> None:
    """Predict the LOCAL/REGION tasks a region loss loses: the RPO window and the count."""
    try:
        delay = MirrorDelay(latency, jitter, base, in_flight_lost=link_dies)
        p = predict_rpo(rate, delay, run or None)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    data = {"link_dies": link_dies, **p.as_dict()}

    def render(console: Console) -> None:
        table = Table(title="RPO of a region loss (regions.rpo)")
        for column in ("window", "exposed", "rate/s", "lost (mean)", "lost (99.9 % bound)"):
            table.add_column(column, justify="right")
        table.add_row(
            format_duration(p.window_s), format_duration(p.exposed_s), f"{rate:g}",
            f"{p.expected_lost:.2f}", str(p.bound),
        )  # fmt: skip
        console.print(table)

    emit(as_json, data, render)


@click.command("rto", context_settings={"show_default": True})
@click.option(
    "--fault",
    type=click.Choice(["region", "primary"]),
    default="region",
    help="region: the home's region lost (agent and etcd member too); primary: only its "
    "Redis primary killed.",
)
@click.option("--regions", type=int, default=3, help="Regions (a strict majority judges).")
@click.option("--confirm", default="3s", type=DURATION, help="Agents' confirm_s.")
@click.option(
    "--promotion",
    multiple=True,
    default=("170ms",),
    type=DURATION,
    help="Measured promote() durations (repeat for samples; the controller logs its steps).",
)
@click.option("--leader-lost-p", type=float, default=0.0, help="P(controller leader lost).")
@click.option("--etcd-lost-p", type=float, default=0.0, help="P(etcd Raft leader lost).")
@click.option("--rate", type=float, default=30.0, help="Submits/s of every home together.")
@click.option("--home-share", type=float, default=1 / 3, help="The lost home's share.")
@click.option("--attempts", type=int, default=3, help="SDK sends per submit.")
@click.option("--runs", type=int, default=2000, help="Monte Carlo runs.")
@click.option("--seed", type=int, default=0, help="Same seed, same answer.")
@click.option(
    "--measured",
    multiple=True,
    type=float,
    help="Measured RTOs in seconds (repeat): compares their median with the prediction.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def rto_command(
    fault: str,
    regions: int,
    confirm: float,
    promotion: tuple[float, ...],
    leader_lost_p: float,
    etcd_lost_p: float,
    rate: float,
    home_share: float,
    attempts: int,
    runs: int,
    seed: int,
    measured: tuple[float, ...],
    as_json: bool,
) -> None:
    """Predict the RTO distribution of a region loss (or a primary killed)."""
    try:
        params = RtoParams(
            fault="region" if fault == "region" else "primary", regions=regions,
            confirm_s=confirm, promotion_s=promotion, leader_lost_p=leader_lost_p,
            etcd_lost_p=etcd_lost_p, rate_per_s=rate, home_share=home_share,
            retry=RetryPolicy(attempts=attempts),
        )  # fmt: skip
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    dist = predict_rto(params, runs, seed)
    data: dict[str, Any] = {"fault": fault, "runs": runs, "seed": seed, **dist.summary()}
    if measured:
        med = statistics.median(measured)
        data |= {
            "measured": list(measured),
            "measured_p50_s": med,
            "ratio": med / dist.median,
            "within_20_percent": abs(med - dist.median) <= TOLERANCE * dist.median,
        }

    def render(console: Console) -> None:
        table = Table(title=f"RTO of a {fault} loss (simulation.rto, {runs} runs)")
        for column in ("p05", "p50", "p95", "measured p50", "measured/predicted"):
            table.add_column(column, justify="right")
        table.add_row(
            format_duration(data["p05_s"]), format_duration(data["p50_s"]),
            format_duration(data["p95_s"]),
            format_duration(data["measured_p50_s"]) if measured else "-",
            f"{data['ratio']:.2f}" if measured else "-",
        )  # fmt: skip
        console.print(table)

    emit(as_json, data, render)
