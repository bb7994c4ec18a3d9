"""Shipped scenarios on the real local cluster, started by the launcher with its services
(gateways, agents, workers): the `ci: true` ones in every test run (each 60 s of load
or less; the CI subset stays around five minutes), the rest (marked `gameday`) with
`make gameday`. Each must pass its own invariants and SLOs, and must really have applied
its faults. `GameDay.run` stops its cluster whatever happens."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from homeport.chaos.runner import GameDay
from homeport.chaos.scenario import load_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
FILES = sorted(SCENARIOS.glob("*.yaml"))
CI = [p for p in FILES if load_scenario(p).ci]
REST = [p for p in FILES if not load_scenario(p).ci]
# `make gameday SEEDS=1,2,3` runs every scenario with each seed (same seed, same timeline).
SEEDS = [int(s) for s in os.environ.get("HOMEPORT_GAMEDAY_SEEDS", "1").split(",") if s.strip()]
RUNS = [(p, seed) for p in REST for seed in SEEDS]


def _run(path: Path, out: Path, seed: int = 1) -> None:
    scenario = load_scenario(path)
    game = GameDay(scenario, yaml.safe_load(path.read_text()), seed, out, say=print)
    result = game.run()
    # Game days run secure (the launcher's default): no secret in any log or report.
    assert game.secrets_checked >= 10 and game.secret_leaks == [], game.secret_leaks
    history = result.verdict
    applied = [f for f in GameDay.last_faults(result.history)]
    assert len(applied) >= len(scenario.timeline), "every step was applied"
    assert not [f for f in applied if f.detail.startswith("FAILED")], applied
    assert history.acknowledged > 0 and history.executed > 0
    assert history.ok, "\n".join(history.violations[:20])


@pytest.mark.timeout(240)
@pytest.mark.parametrize("path", CI, ids=[p.stem for p in CI])
def test_ci_scenario_holds_its_invariants(path: Path, tmp_path: Path) -> None:
    assert len(CI) >= 4, "CI runs a smoke subset of at least 4 scenarios"
    assert load_scenario(path).load.duration_s <= 60
    _run(path, tmp_path)


@pytest.mark.gameday
@pytest.mark.timeout(600)
@pytest.mark.parametrize(("path", "seed"), RUNS, ids=[f"{p.stem}-seed{s}" for p, s in RUNS])
def test_gameday_scenario_holds_its_invariants(path: Path, seed: int, tmp_path: Path) -> None:
    _run(path, tmp_path, seed)
