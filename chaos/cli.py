"""`homeport chaos`: run game days, list scenarios, judge a history again.

    homeport chaos run scenarios/region-loss.yaml --seed 7     run, report, verdict
    homeport chaos list                                        the shipped scenarios
    homeport chaos check reports/region-loss-7/history.jsonl   judge a history again
    homeport chaos faults                                      the fault registry

Exit codes: 0 every invariant and SLO held; 1 a violation (the verdict failed);
2 the scenario or history was refused, or the run could not take place.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from types import FrameType

import click
import yaml
from homeport.chaos.errors import ChaosError, ScenarioError
from homeport.core.config import read_yaml
from homeport.core.extras import require
from homeport.core.security import cluster_insecure_option

from homeport.options import out_dir_option

SCENARIOS = Path("scenarios")
EXIT_FAIL, EXIT_ERROR = 1, 2


@click.group("chaos")
def chaos() -> None:
    """Chaos game days: faults under load, judged from the history."""


@chaos.command("run")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--seed", type=int, default=1, show_default=True, help="Same seed, same timeline.")
@out_dir_option("Each run writes to OUT/<scenario>-<seed>/.", Path("reports"))
@click.option("--keep", is_flag=True, help="Keep the cluster's state directory (logs).")
@cluster_insecure_option("game days run")
def run(files: tuple[Path, ...], seed: int, out: Path, keep: bool, insecure: bool) -> None:
    """Run scenario FILES one after another; exit 1 if any verdict fails, 2 if any run
    could not be judged (it says why; the other scenarios still run)."""
    require("chaos", "matplotlib")
    from homeport.chaos.runner import GameDay
    from homeport.chaos.scenario import load_scenario

    # SIGTERM (e.g. from `timeout`) must unwind like Ctrl-C, so the run stops every
    # process it started instead of leaving a cluster behind.
    signal.signal(signal.SIGTERM, _interrupt)
    failed: list[str] = []
    errored: list[str] = []
    for path in files:
        try:
            scenario = load_scenario(path)
            result = GameDay(
                scenario,
                read_yaml(path, ScenarioError, "<file>"),
                seed,
                out / f"{scenario.name}-{seed}",
                say=lambda m: click.echo(m, err=True),
                keep=keep,
                insecure=insecure,
            ).run()
        except ChaosError as exc:
            click.echo(f"error: {path}: {exc}", err=True)
            errored.append(str(path))
            continue
        click.echo(
            json.dumps(
                {"scenario": scenario.name, "seed": seed, **result.verdict.summary()}, default=str
            )
        )
        click.echo(f"report: {result.reports[0]}", err=True)
        if not result.verdict.ok:
            failed.append(scenario.name)
    if len(files) > 1:
        click.echo(
            f"{len(files) - len(failed) - len(errored)} passed, {len(failed)} failed "
            f"{failed or ''}, {len(errored)} not judged {errored or ''}",
            err=True,
        )
    sys.exit(EXIT_ERROR if errored else EXIT_FAIL if failed else 0)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@chaos.command("list")
@click.option(
    "--dir", "folder", type=click.Path(path_type=Path), default=SCENARIOS, show_default=True
)
def list_(folder: Path) -> None:
    """The scenarios in DIR with their hypothesis, whether CI runs them, and validity."""
    from homeport.chaos.scenario import load_scenario

    for path in sorted(folder.glob("*.yaml")):
        try:
            s = load_scenario(path)
        except ChaosError as exc:
            click.echo(f"{path.name:34} INVALID {exc}")
            continue
        mark = "ci " if s.ci else "   "
        click.echo(f"{path.name:34} {mark} {len(s.timeline):2} steps  {s.hypothesis[:70]}")


@chaos.command("check")
@click.argument("history", type=click.Path(path_type=Path, exists=True))
@click.option(
    "--scenario",
    type=click.Path(path_type=Path, exists=True),
    help="Judge against this scenario's invariants (default: the one recorded).",
)
def check_(history: Path, scenario: Path | None) -> None:
    """Judge HISTORY (a history.jsonl) again; exit code is the verdict."""
    from homeport.chaos.checker import check
    from homeport.chaos.history import HistoryError, read_history

    try:
        h = read_history(history)
    except HistoryError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    spec = yaml.safe_load(scenario.read_text()) if scenario else None
    verdict = check(h, spec)
    click.echo(json.dumps(verdict.summary(), indent=1, default=str))
    sys.exit(0 if verdict.ok else EXIT_FAIL)


@chaos.command("faults")
def faults() -> None:
    """Every registered fault and what it does."""
    from homeport.chaos.faults import registry

    for name, cls in registry().items():
        click.echo(f"{name:12} {cls.summary}")
