"""Scenario files: the shipped ones load; bad ones are refused naming field, value, fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from homeport.chaos.errors import ScenarioError
from homeport.chaos.faults import registry
from homeport.chaos.plan import plan
from homeport.chaos.scenario import load_scenario, parse_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
BASE: dict[str, Any] = {"name": "t", "hypothesis": "a hypothesis long enough"}


def _with(*steps: dict[str, Any]) -> dict[str, Any]:
    return {**BASE, "timeline": list(steps)}


def _refused(data: dict[str, Any]) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data)
    return info.value


def test_every_shipped_scenario_is_valid_and_there_are_twelve_or_more() -> None:
    files = sorted(SCENARIOS.rglob("*.yaml"))  # experimental/ too: kept valid
    assert len(files) >= 12
    loaded = [load_scenario(path) for path in files]
    assert len([s for s in loaded if s.ci]) >= 4
    used = {step.fault for s in loaded for step in s.timeline}
    assert {"latency", "link_down", "isolate", "lose_region", "kill", "promote"} <= used


def test_unknown_link_name_is_refused_with_examples() -> None:
    err = _refused(_with({"at": 1, "fault": "latency", "link": "us-east->mars:redis"}))
    assert err.field == "timeline[0].link" and err.value == "us-east->mars:redis"
    assert "no such link" in err.reason and "->" in err.reason


def test_toxic_attribute_out_of_range_is_refused() -> None:
    step = {"at": 1, "fault": "bandwidth", "link": "client->us-east:gateway",
            "params": {"rate": 0}}  # fmt: skip
    err = _refused(_with(step))
    assert err.field == "timeline[0].params.rate"
    assert "out of range" in err.reason and "KB/s" in err.reason


def test_unknown_toxic_attribute_and_jitter_above_latency_are_refused() -> None:
    link = "eu-west->us-east:redis"
    err = _refused(_with({"at": 1, "fault": "latency", "link": link, "params": {"delay": 5}}))
    assert err.field == "timeline[0].params.delay" and "use jitter, latency" in err.reason
    step = {"at": 1, "fault": "latency", "link": link, "params": {"latency": 10, "jitter": 20}}
    assert _refused(_with(step)).field == "timeline[0].params.jitter"


def test_overlapping_faults_that_cannot_both_apply_are_refused() -> None:
    link = "eu-west->us-east:redis"
    err = _refused(_with(
        {"at": 5, "for": 10, "fault": "latency", "link": link},
        {"at": 12, "for": 5, "fault": "latency", "link": link},
    ))  # fmt: skip
    assert err.field == "timeline[1]" and "overlaps timeline[0]" in err.reason
    assert "between 12s and 15s" in err.reason
    # one after the other, or a different toxic, is fine
    parse_scenario(_with(
        {"at": 5, "for": 10, "fault": "latency", "link": link},
        {"at": 15, "for": 5, "fault": "latency", "link": link},
        {"at": 6, "for": 5, "fault": "bandwidth", "link": link},
    ))  # fmt: skip


def test_isolation_overlapping_a_link_down_on_its_links_is_refused() -> None:
    err = _refused(_with(
        {"at": 5, "for": 10, "fault": "link_down", "link": "client->us-east:gateway"},
        {"at": 8, "for": 10, "fault": "isolate", "region": "us-east"},
    ))  # fmt: skip
    assert "link client->us-east:gateway down" in err.reason


def test_killing_a_paused_process_is_refused() -> None:
    target = {"component": "gateway-eu-west"}
    err = _refused(_with(
        {"at": 5, "for": 10, "fault": "pause", "target": target},
        {"at": 6, "fault": "kill", "target": target},
    ))  # fmt: skip
    assert "process gateway-eu-west" in err.reason


def test_failback_without_promotion_and_double_promotion_are_refused() -> None:
    err = _refused(_with({"at": 5, "fault": "failback", "region": "us-east"}))
    assert "nothing to fail back" in err.reason
    err = _refused(_with(
        {"at": 5, "fault": "promote", "region": "us-east"},
        {"at": 9, "fault": "promote", "region": "us-east"},
    ))  # fmt: skip
    assert err.field == "timeline[1].region" and "already promoted" in err.reason


def test_schema_errors_name_the_field() -> None:
    assert _refused({**BASE, "load": {"rate": -1}}).field == "load.rate"
    assert _refused({**BASE, "extra": 1}).field == "extra"
    err = _refused(_with({"at": 1, "fault": "meteor"}))
    assert err.field == "timeline[0].fault" and "latency" in err.reason
    err = _refused(_with({"at": 1, "fault": "kill", "target": {"component": "redis-x"}}))
    assert err.field == "timeline[0].target.component"
    err = _refused(_with({"at": 1, "fault": "kill", "target": {"kind": "worker", "count": 9}}))
    assert err.field == "timeline[0].target.count"


def test_a_cluster_region_outside_the_topology_is_refused_naming_the_regions() -> None:
    err = _refused({**BASE, "topology": {"regions": 2, "cluster_regions": ["ap-south"]}})
    assert err.field == "topology.cluster_regions" and err.value == ["ap-south"]
    assert "'us-east', 'eu-west'" in err.reason
    ok = parse_scenario({**BASE, "topology": {"cluster_regions": ["us-east"]}})
    assert ok.topology.cluster_regions == ["us-east"]
    shipped = load_scenario(SCENARIOS / "region-loss-cluster.yaml")
    assert shipped.topology.cluster_regions == ["us-east"]


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(bad)
    bad.write_text("name: x\nhypothesis: a long enough hypothesis\nload: {rate: fast}\n")
    with pytest.raises(ScenarioError, match=r"bad.yaml: field load.rate = 'fast'"):
        load_scenario(bad)


def test_same_seed_gives_the_same_timeline_and_another_seed_may_not() -> None:
    scenario = load_scenario(SCENARIOS / "worker-kill-storm.yaml")
    first = [p for p, _ in plan(scenario, 7)]
    assert first == [p for p, _ in plan(scenario, 7)]
    assert len(first) == 5 and all(len(p.targets) == 2 for p in first)
    others = {tuple(p.targets for p, _ in plan(scenario, seed)) for seed in range(10)}
    assert len(others) > 1, "targets are drawn from the seed"


def test_every_fault_module_is_registered() -> None:
    assert set(registry()) == {
        "latency", "bandwidth", "timeout", "reset_peer", "slicer", "limit_data",
        "slow_close", "link_down", "kill", "pause", "isolate", "lose_region", "promote",
        "failback", "kill_controller",
    }  # fmt: skip


def test_failback_may_follow_the_controllers_promotion_but_promote_may_not() -> None:
    parse_scenario(
        _with(
            {"at": 5, "for": 10, "fault": "isolate", "region": "us-east"},
            {"at": 30, "fault": "failback", "region": "us-east"},
        )
    )
    err = _refused(
        _with(
            {"at": 5, "fault": "lose_region", "region": "us-east"},
            {"at": 9, "fault": "promote", "region": "us-east"},
        )
    )
    assert err.field == "timeline[1].region" and "by the controller" in err.reason
