"""The planner, the capacity check before a promotion, and `homeport plan`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import yaml
from click.testing import CliRunner, Result
from homeport.simulation.capacity import RegionLoad, can_absorb
from homeport.simulation.cli import plan
from homeport.simulation.distributions import ExponentialService
from homeport.simulation.planner import PlanRequest
from homeport.simulation.planner import plan as make_plan
from homeport.simulation.scenarios import Workload, analytic_p99_s

SERVICE = ExponentialService(mean_s=0.01)
SMALL = Workload(service_time=SERVICE, concurrency=4, partitions=8, tasks=20_000)


def test_planner_finds_the_fewest_workers_meeting_the_target() -> None:
    request = PlanRequest(4000.0, 0.03, 2, True, SMALL, promotion_delay_s=2.0)
    result = make_plan(request)
    normal = next(s for s in result.scenarios if s.name == "normal")
    absorbing = next(s for s in result.scenarios if s.name.endswith("down"))
    assert normal.p99_wait_s <= 0.03 and absorbing.p99_wait_s <= 0.03
    below = {e.workers: e for e in normal.evaluations}.get(normal.workers - 1)
    assert below is None or below.p99_wait_s > 0.03  # one fewer misses the target
    assert result.workers_per_region["region-1"] == absorbing.workers >= normal.workers
    assert result.headroom_after_failover is not None and result.headroom_after_failover > 0
    drain = result.drains[0]
    assert math.isfinite(drain.drain_time_s) and drain.drain_time_s > 0
    # the analytic first guess agrees with the simulated answer for M/M/k workers
    assert analytic_p99_s(SMALL, normal.workers, 8, 2000.0) <= 0.03 * 1.2


def test_can_absorb_says_no_when_the_standby_would_be_overloaded() -> None:
    failed = RegionLoad("a", 2000.0, 8, concurrency=4, partitions=16)
    thin = RegionLoad("b", 2000.0, 8, concurrency=4, partitions=16)
    verdict = can_absorb(failed, thin, service_time=SERVICE)
    assert not verdict.ok and "overloaded" in verdict.reason
    assert math.isinf(verdict.drain_time_s)


def test_can_absorb_reports_drain_time_and_honours_limits() -> None:
    failed = RegionLoad("a", 1000.0, 8, concurrency=4, partitions=16)
    standby = RegionLoad("b", 1000.0, 8, concurrency=4, partitions=16)
    fast = can_absorb(failed, standby, service_time=SERVICE, promotion_delay_s=5.0)
    assert fast.ok and not fast.simulated
    assert fast.backlog_tasks == 5000.0
    assert fast.drain_time_s == fast.fluid_drain_time_s == 5000 / 1200
    assert fast.utilisation_after == 2000 * 0.01 / 32
    slow = can_absorb(failed, standby, service_time=SERVICE, promotion_delay_s=5.0, max_drain_s=2.0)
    assert not slow.ok and "drain" in slow.reason
    simulated = can_absorb(
        failed, standby, service_time=SERVICE, promotion_delay_s=5.0, simulate=True
    )
    assert simulated.simulated
    assert fast.drain_time_s * 0.85 <= simulated.drain_time_s <= fast.drain_time_s * 1.3


def _params_file(tmp_path: Path, workers_b: int) -> Path:
    path = tmp_path / "params.yaml"
    region = {
        "arrivals": {"kind": "poisson", "rate_per_s": 1000.0},
        "concurrency": 4,
        "partitions": 16,
    }
    path.write_text(
        yaml.safe_dump(
            {
                "service_time": {"kind": "exponential", "mean_s": 0.01},
                "regions": [
                    {"name": "eu", "workers": 8, "standby": "us", **region},
                    {"name": "us", "workers": workers_b, **region},
                ],
            }
        )
    )
    return path


def _failover(tmp_path: Path, standby_workers: int, *extra: str) -> Result:
    params = str(_params_file(tmp_path, standby_workers))
    return CliRunner().invoke(plan, ["failover", "eu", "--to", "us", "--params", params, *extra])


def test_cli_failover_answers_yes_and_no(tmp_path: Path) -> None:
    yes = _failover(tmp_path, 8, "--fast", "--json")
    assert yes.exit_code == 0, yes.output
    assert json.loads(yes.output)["ok"] is True
    no = _failover(tmp_path, 5, "--promotion-delay", "2s")
    assert no.exit_code == 2, no.output
    assert "overloaded" in no.output


def test_cli_plan_prints_workers_and_writes_plots(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        plan,
        [
            "--rate",
            "4000",
            "--p99-wait",
            "30ms",
            "--regions",
            "2",
            "--survive-region-loss",
            "--service-mean",
            "10ms",
            "--concurrency",
            "4",
            "--partitions",
            "8",
            "--tasks",
            "20000",
            "--promotion-delay",
            "2s",
            "--plots",
            str(tmp_path / "plots"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data["workers_per_region"]) == {"region-1", "region-2"}
    assert data["drains"][0]["drain_time_s"] > 0
    for name in ("p99_wait_vs_workers.png", "backlog_after_failover.png"):
        assert (tmp_path / "plots" / name).stat().st_size > 10_000


def test_cli_refuses_bad_input_with_a_clear_message(tmp_path: Path) -> None:
    runner = CliRunner()
    bad_rate = runner.invoke(plan, ["--rate", "-5", "--p99-wait", "50ms"])
    assert bad_rate.exit_code == 1 and "rate=-5.0" in bad_rate.output
    bad_unit = runner.invoke(plan, ["--rate", "5", "--p99-wait", "50"])
    assert bad_unit.exit_code == 2 and "followed by a unit" in bad_unit.output
    missing = runner.invoke(plan, [])
    assert missing.exit_code == 2 and "--rate" in missing.output
    unknown = runner.invoke(
        plan, ["failover", "mars", "--to", "us", "--params", str(_params_file(tmp_path, 8))]
    )
    assert unknown.exit_code == 1 and "no such region" in unknown.output


def test_cli_calibrate_then_simulate(tmp_path: Path) -> None:
    rows = tmp_path / "attempts.csv"
    lines = ["enqueued_at,started_at,finished_at,attempt,status"]
    lines += [
        f"{i * 0.01},{i * 0.01 + 0.001},{i * 0.01 + 0.001 + 0.004 * (1 + i % 3)},1,succeeded"
        for i in range(500)
    ]
    rows.write_text("\n".join(lines))
    out = tmp_path / "params.yaml"
    runner = CliRunner()
    calibrated = runner.invoke(plan, ["calibrate", "--attempts", str(rows), "--out", str(out)])
    assert calibrated.exit_code == 0, calibrated.output
    ran = runner.invoke(plan, ["simulate", "--params", str(out), "--tasks", "5000", "--json"])
    assert ran.exit_code == 0, ran.output
    data = json.loads(ran.output)
    assert data["tasks"] == 5000
    assert data["littles_law"]["relative_error"] < 0.05
