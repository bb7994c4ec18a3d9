"""`homeport plan`: capacity planning from the command line.

homeport plan --rate 50000 --p99-wait 50ms --regions 3 --survive-region-loss
homeport plan failover region-1 --to region-2 --params params.yaml
homeport plan calibrate --loadtest export.json --out params.yaml
homeport plan simulate --params params.yaml --tasks 1000000
homeport plan rpo --latency 50ms --rate 30 --link-dies
homeport plan rto --fault region --measured 3.0 --measured 3.4
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import click
import yaml
from homeport.simulation.calibration import (
    attempt_stats,
    params_from_attempts,
    params_from_export,
    write_params,
)
from homeport.simulation.capacity import RegionLoad, can_absorb
from homeport.simulation.distributions import ExponentialService
from homeport.simulation.durations import DURATION, format_duration
from homeport.simulation.errors import ParameterError, SimulationError
from homeport.simulation.exports import load_export
from homeport.simulation.model import simulate
from homeport.simulation.params import KeySpace, ModelParams, RetryPolicy, load_params
from homeport.simulation.planner import PlanRequest
from homeport.simulation.planner import plan as make_plan
from homeport.simulation.plots import plot_validation, write_plots
from homeport.simulation.recovery_cli import rpo_command, rto_command
from homeport.simulation.render import emit, finite, plan_json, render_plan
from homeport.simulation.results import littles_law, summarise
from homeport.simulation.scenarios import Workload
from homeport.simulation.validation import validate
from rich.console import Console
from rich.table import Table


def params_option(
    help_text: str, *, required: bool = False
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The `--params FILE` option (a parameter YAML, `simulation.params`) of every `plan`
    command that reads one, passed as `params_path`."""
    return click.option(
        "--params",
        "params_path",
        type=click.Path(exists=True, dir_okay=False),
        required=required,
        help=help_text,
    )


@contextmanager
def _errors() -> Iterator[None]:
    """Show our errors as one clear line and exit 1, instead of a traceback."""
    try:
        yield
    except SimulationError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group(invoke_without_command=True, context_settings={"show_default": True})
@click.option("--rate", type=float, help="Total tasks per second across all regions.")
@click.option("--p99-wait", type=DURATION, help="Target p99 queue wait, e.g. 50ms.")
@click.option("--regions", type=int, default=1, help="Regions sharing the rate equally.")
@click.option(
    "--survive-region-loss",
    is_flag=True,
    help="Also size each region to absorb its ring neighbour's load (N+1).",
)
@params_option("Parameter file (service time, keys, retries) from `plan calibrate`.")
@click.option(
    "--service-mean",
    type=DURATION,
    default="5ms",
    help="Mean of exponential service times, used when --params is not given.",
)
@click.option("--concurrency", type=int, default=8, help="Tasks one worker runs at once.")
@click.option("--partitions", type=int, default=64, help="Partitions per region.")
@click.option(
    "--promotion-delay",
    type=DURATION,
    default="10s",
    help="Outage to standby serving (the RTO) for the drain estimate.",
)
@click.option(
    "--tasks", type=int, default=100_000, help="Simulated tasks per evaluated worker count."
)
@click.option(
    "--plots",
    "plots_dir",
    type=click.Path(file_okay=False),
    help="Directory to write PNG plots into.",
)
@click.option("--seed", type=int, default=0, help="Seed; equal seeds give equal answers.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.pass_context
def plan_group(
    ctx: click.Context,
    rate: float | None,
    p99_wait: float | None,
    regions: int,
    survive_region_loss: bool,
    params_path: str | None,
    service_mean: float,
    concurrency: int,
    partitions: int,
    promotion_delay: float,
    tasks: int,
    plots_dir: str | None,
    seed: int,
    as_json: bool,
) -> None:
    """Capacity planning with the SimPy model of homeport.

    Without a subcommand: find the workers per region that keep the p99 queue wait under
    --p99-wait at --rate, by simulating candidate worker counts. With
    --survive-region-loss each region is also sized to carry its neighbour's traffic
    after a failover, and the backlog drain time after a failover is simulated.

    Example: homeport plan --rate 50000 --p99-wait 50ms --regions 3 --survive-region-loss
    """
    if ctx.invoked_subcommand is not None:
        return
    if rate is None or p99_wait is None:
        raise click.UsageError("give --rate and --p99-wait (or a subcommand; see --help)")
    with _errors():
        base = load_params(params_path) if params_path else None
        workload = Workload(
            service_time=base.service_time if base else ExponentialService(mean_s=service_mean),
            keys=base.keys if base else KeySpace(),
            retries=base.retries if base else RetryPolicy(),
            concurrency=concurrency,
            partitions=partitions,
            tasks=tasks,
            seed=seed,
        )
        request = PlanRequest(
            rate, p99_wait, regions, survive_region_loss, workload, promotion_delay
        )
        result = make_plan(request)
        plots = write_plots(result, plots_dir) if plots_dir else []
    emit(as_json, plan_json(result, plots), lambda console: render_plan(console, result, plots))


plan_group.name = "plan"


@plan_group.command("failover")
@click.argument("failed")
@click.option("--to", "standby", required=True, help="The region to promote.")
@params_option("Parameter file listing both regions (rates, workers).", required=True)
@click.option(
    "--promotion-delay", type=DURATION, default="10s", help="Outage to standby serving (the RTO)."
)
@click.option("--p99-wait", type=DURATION, help="Refuse if the p99 wait after would exceed.")
@click.option("--max-drain", type=DURATION, help="Refuse if the drain would take longer.")
@click.option(
    "--simulate/--fast",
    default=True,
    help="Simulate the drain (default) or answer analytically in microseconds.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def failover_command(
    failed: str,
    standby: str,
    params_path: str,
    promotion_delay: float,
    p99_wait: float | None,
    max_drain: float | None,
    simulate: bool,
    as_json: bool,
) -> None:
    """Can the --to region absorb FAILED's load, and how long will the backlog take to drain?

    Reads both regions' rates and worker pools from --params. Exits 2 when the answer
    is no, so a runbook can gate a promotion on it.
    """
    with _errors():
        params = load_params(params_path)
        loads = [_region_load(params, name) for name in (failed, standby)]
        verdict = can_absorb(
            loads[0],
            loads[1],
            service_time=params.service_time,
            promotion_delay_s=promotion_delay,
            p99_wait_target_s=p99_wait,
            max_drain_s=max_drain,
            keys=params.keys,
            retries=params.retries,
            simulate=simulate,
            seed=params.seed,
        )
    data = {k: finite(v) if isinstance(v, float) else v for k, v in asdict(verdict).items()}

    def render(console: Console) -> None:
        table = Table(title=f"Can {standby} absorb {failed}?")
        table.add_column("measure")
        table.add_column("value", justify="right")
        table.add_row("verdict", "[green]yes[/green]" if verdict.ok else "[red]no[/red]")
        table.add_row("reason", verdict.reason)
        table.add_row("utilisation after", f"{verdict.utilisation_after:.0%}")
        table.add_row("headroom after", f"{verdict.headroom_after:.0%}")
        table.add_row("backlog at promotion", f"{verdict.backlog_tasks:,.0f} tasks")
        if verdict.simulated:
            table.add_row("drain time (simulated)", format_duration(verdict.drain_time_s))
        table.add_row(
            "drain time (fluid, busiest worker)", format_duration(verdict.fluid_busiest_worker_s)
        )
        table.add_row("drain time (fluid, pooled)", format_duration(verdict.fluid_drain_time_s))
        table.add_row("p99 wait after (analytic)", format_duration(verdict.p99_wait_after_s))
        console.print(table)

    emit(as_json, data, render)
    if not verdict.ok:
        raise SystemExit(2)


def _region_load(params: ModelParams, name: str) -> RegionLoad:
    region = params.region(name)
    return RegionLoad(
        name, region.arrivals.mean_rate, region.workers, region.concurrency, region.partitions
    )


@plan_group.command("calibrate")
@click.option(
    "--loadtest",
    type=click.Path(exists=True, dir_okay=False),
    help="A homeport-loadtest-export/1 file (JSON or YAML).",
)
@click.option(
    "--attempts",
    type=click.Path(exists=True, dir_okay=False),
    help="`attempts` rows as CSV or JSON (a list of objects, or JSON lines).",
)
@click.option(
    "--concurrency", type=int, default=1, help="Worker concurrency to assume with --attempts."
)
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False),
    required=True,
    help="Where to write the parameter YAML.",
)
def calibrate_command(
    loadtest: str | None, attempts: str | None, concurrency: int, out_path: str
) -> None:
    """Fit the model from measurements and write an editable parameter file."""
    with _errors():
        if loadtest is not None and attempts is None:
            params, fit = params_from_export(load_export(loadtest))
            source = loadtest
        elif attempts is not None and loadtest is None:
            params, fit = params_from_attempts(
                attempt_stats(_read_rows(Path(attempts))), concurrency=concurrency
            )
            source = attempts
        else:
            raise click.UsageError("give exactly one of --loadtest or --attempts")
        write_params(params, out_path, source=source, fit=fit)
    click.echo(
        f"wrote {out_path}: {fit.service_time.kind} service time, mean "
        f"{format_duration(fit.service_time.mean)}, from {fit.samples} samples"
    )


def _read_rows(path: Path) -> list[dict[str, Any]]:
    text = path.read_text()
    if path.suffix == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
        return [{k: _number_or_text(v) for k, v in row.items()} for row in rows]
    stripped = text.lstrip()
    if stripped.startswith("["):
        loaded = json.loads(text)
    else:
        loaded = [json.loads(line) for line in text.splitlines() if line.strip()]
    if not isinstance(loaded, list):
        raise ParameterError(
            "attempts file",
            str(path),
            "is not a list of rows",
            "write a JSON array of objects, JSON lines, or CSV",
        )
    return loaded


def _number_or_text(value: str | None) -> Any:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        return value


@plan_group.command("simulate")
@params_option("Parameter file to run.", required=True)
@click.option("--tasks", type=int, help="Override max_tasks (e.g. 1000000 for the benchmark).")
@click.option("--seed", type=int, help="Override the file's seed.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def simulate_command(params_path: str, tasks: int | None, seed: int | None, as_json: bool) -> None:
    """Run the model once and report waits, Little's law and the wall-clock time."""
    with _errors():
        raw = yaml.safe_load(Path(params_path).read_text())
        if tasks is not None:
            raw["max_tasks"] = tasks
        if seed is not None:
            raw["seed"] = seed
        params = load_params(raw)
        record = simulate(params)
    summary = summarise(record, params.warmup_fraction)
    law = littles_law(record, record.steady_mask(params.warmup_fraction))
    data = {
        "tasks": record.tasks,
        "wall_s": record.wall_s,
        "simulated_s": record.end_s,
        "retries": record.retries,
        "summary": asdict(summary),
        "littles_law": asdict(law) | {"relative_error": law.relative_error},
    }

    def render(console: Console) -> None:
        table = Table(
            title=f"{record.tasks:,} tasks simulated in {record.wall_s:.1f}s "
            f"wall clock ({record.end_s:,.1f}s simulated)"
        )
        table.add_column("measure")
        table.add_column("value", justify="right")
        table.add_row("mean wait", format_duration(summary.mean_wait_s))
        table.add_row("p50 wait", format_duration(summary.p50_wait_s))
        table.add_row("p99 wait", format_duration(summary.p99_wait_s))
        table.add_row("P(wait > 0)", f"{summary.p_wait:.3f}")
        table.add_row("p99 end-to-end", format_duration(summary.p99_latency_s))
        table.add_row("retries / dead-lettered", f"{record.retries} / {summary.dead_lettered}")
        table.add_row(
            "Little: L vs λW", f"{law.mean_waiting:.2f} vs {law.arrival_rate * law.mean_wait_s:.2f}"
        )
        console.print(table)

    emit(as_json, data, render)


def _first_is_default(
    flag: str, choices: tuple[str, ...], text: str
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A choice option whose first choice is the default."""
    return click.option(
        flag, type=click.Choice(choices), default=choices[0], show_default=True, help=text
    )


@plan_group.command("validate")
@click.argument("exports", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--calibrate-on", type=int, default=0, show_default=True,
    help="Index among EXPORTS of the run whose service times calibrate the model.",
)  # fmt: skip
@click.option("--tasks", type=int, default=100_000, show_default=True, help="Simulated per level.")
@click.option("--seed", type=int, default=0, show_default=True)
@_first_is_default(
    "--arrivals",
    ("measured", "poisson"),
    "measured: replay each export's enqueue times (arrival_times_s) when it has them; "
    "poisson: Poisson arrivals at the measured rate.",
)
@_first_is_default(
    "--service-order",
    ("partitions", "fifo"),
    "partitions: a worker starts one task of each waiting partition per round, as "
    "workers do; fifo: in arrival order (the textbook queue).",
)
@click.option("--plot", type=click.Path(dir_okay=False), help="Write a PNG of the comparison.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def validate_command(
    exports: tuple[str, ...],
    calibrate_on: int,
    tasks: int,
    seed: int,
    arrivals: Literal["measured", "poisson"],
    service_order: Literal["partitions", "fifo"],
    plot: str | None,
    as_json: bool,
) -> None:
    """Put the model's queue waits next to load tests run at different rates.

    EXPORTS are `homeport loadtest run` export files (export.json), one per load level.
    The model is calibrated on one of them, run at every export's measured rate and
    setup, and its p50/p99 queue waits (plus the dispatch time measured at the lowest
    load) are printed beside the measured ones. "own hold" is each level's measured mean
    slot hold and the p99 the model gives with it (a diagnosis: the hold moved with the
    load when that column matches and the prediction does not).

    Example: homeport plan validate runs/low/export.json runs/mid/export.json
    runs/high/export.json --plot validation.png
    """
    with _errors():
        loaded = [(Path(p).parent.name or p, load_export(p)) for p in exports]
        fit, checks = validate(
            loaded,
            calibrate_on=calibrate_on,
            tasks=tasks,
            seed=seed,
            arrivals=arrivals,
            order=service_order,
        )
    written = str(plot_validation(checks, Path(plot))) if plot else None
    data = {
        "service_time": fit.service_time.model_dump(),
        "levels": [
            asdict(c) | {"p99_ratio": finite(c.p99_ratio), "p50_ratio": finite(c.p50_ratio)}
            for c in checks
        ],
        "plot": written,
    }

    def render(console: Console) -> None:
        table = Table(
            title=f"model calibrated on {loaded[calibrate_on][0]} "
            f"({fit.service_time.kind} service, mean {format_duration(fit.service_time.mean)}); "
            f"dispatch {format_duration(checks[0].dispatch_s)}"
        )
        for column in ("level", "arrivals", "rate/s", "ρ", "p50 measured", "p50 predicted",
                       "p50 m/p", "p99 measured", "p99 predicted", "p99 m/p",
                       "own hold", "own-hold p99"):  # fmt: skip
            table.add_column(column, justify="left" if column == "level" else "right")
        for c in checks:
            table.add_row(
                c.label, c.arrivals, f"{c.rate_per_s:,.1f}", f"{c.utilisation:.2f}",
                format_duration(c.measured_p50_s), format_duration(c.predicted_p50_s),
                f"{c.p50_ratio:.2f}",
                format_duration(c.measured_p99_s), format_duration(c.predicted_p99_s),
                f"{c.p99_ratio:.2f}",
                format_duration(c.hold_mean_s), format_duration(c.own_p99_s),
            )  # fmt: skip
        console.print(table)
        if written:
            console.print(f"plot: {written}")

    emit(as_json, data, render)


plan_group.add_command(rpo_command)
plan_group.add_command(rto_command)
plan = plan_group
"""The group `homeport/cli.py` mounts (by the attribute name `plan`)."""
