"""`homeport deploy render`: the topology's deployment fields, their clear errors, and
the files a render writes (or, for a bad topology, does not write)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from homeport.regions.errors import TopologyError
from homeport.regions.render import render
from homeport.regions.topology import parse_topology

from homeport.cli import main
from tests.deploy.conftest import EXAMPLE


def _example() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((EXAMPLE / "topology.yaml").read_text())
    return data


def _refused(data: dict[str, Any]) -> TopologyError:
    with pytest.raises(TopologyError) as info:
        render(parse_topology(data))
    return info.value


def test_example_renders_tfvars_and_one_values_file_per_region() -> None:
    files = render(parse_topology(_example())).files
    assert sorted(files) == [
        "helm/eu-west.values.yaml",
        "helm/us-east.values.yaml",
        "helm/us-west.values.yaml",
        "terraform.tfvars.json",
    ]
    tfvars = json.loads(files["terraform.tfvars.json"])
    assert tfvars["regions"]["us-east"]["cloud_region"] == "us-east-1"
    assert tfvars["mirror_links"][0] == {"home": "us-east", "standby": "us-west"}
    # us-west stands by for us-east, so it hosts us-east's mirror.
    assert tfvars["regions"]["us-west"]["mirrors"][0]["home"] == "us-east"


def test_committed_example_outputs_match_a_fresh_render() -> None:
    """terraform/examples/three-region holds the rendered files the example root reads;
    they must not drift from topology.yaml."""
    for rel, text in render(parse_topology(_example())).files.items():
        committed = EXAMPLE / rel
        assert committed.exists(), f"{committed} is missing: run homeport deploy render"
        assert committed.read_text() == text, (
            f"{committed} differs from a fresh render: run "
            "homeport deploy render --topology terraform/examples/three-region/topology.yaml "
            "--out terraform/examples/three-region"
        )


def test_topology_without_deploy_fields_stays_valid_but_cannot_render() -> None:
    data = _example()
    del data["deployment"]
    for region in data["regions"]:
        del region["deploy"]
    topo = parse_topology(data)  # the runtime and `homeport dev up` accept it
    err = _refused(data)
    assert err.field == "deployment" and "missing" in err.reason
    assert topo.regions[0].deploy is None


def test_overlapping_cidrs_are_refused_naming_the_field() -> None:
    data = _example()
    data["regions"][2]["deploy"]["cidr"] = "10.10.128.0/17"  # inside us-east's 10.10/16
    err = _refused(data)
    assert err.field == "regions[2].deploy.cidr" and err.value == "10.10.128.0/17"
    assert "overlaps us-east's cidr" in err.reason


def test_standby_in_the_same_cloud_region_is_refused() -> None:
    data = _example()
    data["regions"][1]["deploy"]["cloud_region"] = "us-east-1"  # us-east's standby
    err = _refused(data)
    assert err.field == "regions[0].standby" and err.value == "us-west"
    assert "same cloud region 'us-east-1'" in err.reason


def test_missing_size_is_refused_naming_the_field() -> None:
    data = _example()
    del data["regions"][1]["deploy"]["postgres"]["size"]
    err = _refused(data)
    assert err.field == "regions[1].deploy.postgres.size"
    assert "required" in err.reason.lower()


def test_region_missing_its_deploy_section_is_refused() -> None:
    data = _example()
    del data["regions"][2]["deploy"]
    err = _refused(data)
    assert err.field == "regions[2].deploy" and "give every region one" in err.reason


def test_address_outside_the_private_zone_is_refused() -> None:
    data = _example()
    data["regions"][0]["etcd"] = "etcd.us-east.example.com:2379"
    err = _refused(data)
    assert err.field == "regions[0].etcd" and "homeport.internal" in err.reason


def test_cloud_region_without_a_provider_slot_is_refused() -> None:
    data = _example()
    data["regions"][2]["deploy"]["cloud_region"] = "sa-east-1"
    err = _refused(data)
    assert err.field == "regions[2].deploy.cloud_region" and err.value == "sa-east-1"
    assert "provider slot" in err.reason


def test_bad_hpa_bounds_are_refused() -> None:
    data = _example()
    data["regions"][0]["deploy"]["workers"] = {"replicas": 5, "max": 2}
    err = _refused(data)
    assert err.field == "regions[0].deploy.workers"
    assert "max 2 is below replicas 5" in err.reason


def test_replica_list_disagreeing_with_the_replica_count_is_refused() -> None:
    data = _example()
    data["regions"][1]["deploy"]["redis"]["replicas"] = 2
    err = _refused(data)
    assert err.field == "regions[1].redis.replicas" and "lists 1 replicas" in err.reason


def test_two_mirrors_on_one_port_in_one_region_are_refused() -> None:
    data = _example()
    # us-east's standby becomes eu-west, which already hosts us-west's mirror on 6380.
    data["regions"][0]["standby"] = "eu-west"
    data["regions"][0]["redis"]["mirror"] = "mirror-us-east.eu-west.homeport.internal:6380"
    err = _refused(data)
    assert err.field == "regions[0].redis.mirror" and "port 6380 is taken" in err.reason


def test_mirror_on_the_port_of_its_hosts_redis_is_refused() -> None:
    data = _example()
    data["regions"][0]["redis"]["mirror"] = "mirror-us-east.us-west.homeport.internal:6379"
    err = _refused(data)
    assert err.field == "regions[0].redis.mirror" and "port 6379 is taken" in err.reason


def test_cli_renders_the_example(tmp_path: Path) -> None:
    out = tmp_path / "build"
    result = CliRunner().invoke(
        main, ["deploy", "render", "--topology", str(EXAMPLE / "topology.yaml"), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert (out / "terraform.tfvars.json").is_file()
    assert sorted(p.name for p in (out / "helm").iterdir()) == [
        "eu-west.values.yaml",
        "us-east.values.yaml",
        "us-west.values.yaml",
    ]


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("regions", 1, "deploy", "cidr"), "10.10.0.0/16", "regions[1].deploy.cidr"),
        (("regions", 0, "deploy", "nodes", "size"), None, "regions[0].deploy.nodes.size"),
        (("regions", 1, "deploy", "cloud_region"), "us-east-1", "regions[0].standby"),
    ],
)
def test_cli_refuses_a_bad_topology_and_writes_nothing(
    tmp_path: Path, path: tuple[Any, ...], value: object, field: str
) -> None:
    data = copy.deepcopy(_example())
    node = data
    for key in path[:-1]:
        node = node[key]
    if value is None:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    topo = tmp_path / "bad.yaml"
    topo.write_text(yaml.safe_dump(data))
    out = tmp_path / "build"
    result = CliRunner().invoke(
        main, ["deploy", "render", "--topology", str(topo), "--out", str(out)]
    )
    assert result.exit_code == 1
    assert field in result.output
    assert not out.exists(), f"a refused render wrote {list(out.rglob('*'))}"
