"""Topology files are validated; errors name the field, the value and the fix."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from homeport.regions.errors import TopologyError
from homeport.regions.topology import load_topology, parse_topology


def _region(name: str, standby: str | None, base: int) -> dict[str, Any]:
    return {
        "name": name,
        "partitions": 8,
        "standby": standby,
        "redis": {
            "mode": "single",
            "primary": f"127.0.0.1:{base}",
            "replicas": [f"127.0.0.1:{base + 1}"],
            "mirror": f"127.0.0.1:{base + 2}",
        },
        "postgres": f"postgresql://postgres@127.0.0.1:5432/homeport_{name.replace('-', '_')}",
        "etcd": f"127.0.0.1:{base + 3}",
        "gateway": f"127.0.0.1:{base + 4}",
    }


GOOD: dict[str, Any] = {
    "version": 1,
    "regions": [_region("us-east", "eu-west", 21000), _region("eu-west", "us-east", 22000)],
    "pins": [{"pattern": "eu:*", "region": "eu-west"}],
    "links": [
        {
            "name": "eu-west->us-east:redis",
            "listen": "127.0.0.1:23000",
            "upstream": "127.0.0.1:21000",
        }
    ],
}


def _refused(data: dict[str, Any]) -> TopologyError:
    with pytest.raises(TopologyError) as info:
        parse_topology(data)
    return info.value


def test_good_topology_round_trips_through_yaml(tmp_path: Path) -> None:
    topo = parse_topology(copy.deepcopy(GOOD))
    path = tmp_path / "t.yaml"
    path.write_text(topo.to_yaml())
    again = load_topology(path)
    assert again == topo
    assert again.home_of("eu:customer-9") == "eu-west"
    assert again.home_of("us:customer-9") is None
    assert again.dial("eu-west", "us-east", "redis", "127.0.0.1:21000") == "127.0.0.1:23000"
    assert again.dial("us-east", "us-east", "redis", "127.0.0.1:21000") == "127.0.0.1:21000"
    assert again.region("us-east").redis.replicas_for_global == 2


def test_standby_naming_an_unknown_region_is_refused() -> None:
    data = copy.deepcopy(GOOD)
    data["regions"][1]["standby"] = "mars"
    err = _refused(data)
    assert (err.field, err.value) == ("regions[1].standby", "mars")
    assert "choose one of ['us-east', 'eu-west']" in str(err)


def test_region_without_standby_is_refused() -> None:
    data = copy.deepcopy(GOOD)
    del data["regions"][0]["standby"]
    err = _refused(data)
    assert err.field == "regions[0].standby"
    assert "has no standby" in str(err) and "eu-west" in str(err)


def test_region_standing_by_itself_is_refused() -> None:
    data = copy.deepcopy(GOOD)
    data["regions"][0]["standby"] = "us-east"
    assert "cannot stand by itself" in str(_refused(data))


def test_duplicate_port_is_refused_naming_both_owners() -> None:
    data = copy.deepcopy(GOOD)
    data["regions"][1]["etcd"] = "127.0.0.1:21001"  # us-east's replica port
    err = _refused(data)
    assert err.field == "regions[1].etcd" and err.value == "127.0.0.1:21001"
    assert "port 21001 is already used by regions[0].redis" in str(err)


def test_malformed_fields_name_their_path() -> None:
    data = copy.deepcopy(GOOD)
    data["regions"][0]["redis"]["primary"] = "localhost"
    err = _refused(data)
    assert err.field == "regions[0].redis.primary" and err.value == "localhost"
    data = copy.deepcopy(GOOD)
    data["regions"][0]["partitions"] = 0
    assert _refused(data).field == "regions[0].partitions"
    data = copy.deepcopy(GOOD)
    data["regions"][0]["colour"] = "blue"
    assert _refused(data).field == "regions[0].colour"


def test_pin_and_link_must_name_known_regions() -> None:
    data = copy.deepcopy(GOOD)
    data["pins"][0]["region"] = "eu-central"
    assert _refused(data).field == "pins[0].region"
    data = copy.deepcopy(GOOD)
    data["links"][0]["name"] = "moon->us-east:redis"
    assert _refused(data).field == "links[0].name"
    data = copy.deepcopy(GOOD)
    data["links"][0]["name"] = "eu-west->us-east:ftp"
    assert "service one of" in str(_refused(data))


def test_unreadable_and_non_yaml_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match="cannot read"):
        load_topology(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("regions: [unclosed")
    with pytest.raises(TopologyError, match="not valid YAML"):
        load_topology(bad)
    bad.write_text("- a list\n")
    with pytest.raises(TopologyError, match="must be a YAML mapping"):
        load_topology(bad)


def test_capacity_policy_defaults_when_absent_and_bad_values_name_their_field(
    tmp_path: Path,
) -> None:
    topo = parse_topology(copy.deepcopy(GOOD))
    assert topo.capacity is None and topo.capacity_policy.check
    assert "capacity" not in topo.to_yaml()  # written back only when it was set
    data = copy.deepcopy(GOOD)
    data["capacity"] = {"p99_wait_s": 0.25, "max_workers": 4}
    set_ = parse_topology(data)
    assert set_.capacity_policy.p99_wait_s == 0.25 and set_.capacity_policy.max_workers == 4
    path = tmp_path / "t.yaml"
    path.write_text(set_.to_yaml())
    assert load_topology(path) == set_
    data["capacity"] = {"max_workers": 0}
    assert _refused(data).field == "capacity.max_workers"
    data["capacity"] = {"p99_wait_s": -1}
    assert _refused(data).field == "capacity.p99_wait_s"
