"""Task validation, settings loading and the assignment function (no servers)."""

from __future__ import annotations

import pytest
from homeport.core.assignment import balance
from homeport.core.errors import InvalidArgument
from homeport.core.settings import Settings
from homeport.core.task import Durability, Limits, new_task
from ulid import ULID


def test_generated_id_is_a_ulid() -> None:
    t = new_task("k", "noop")
    assert str(ULID.from_str(t.id)) == t.id
    assert t.durability is Durability.LOCAL and t.max_attempts == 3


def test_client_id_and_fields_are_kept() -> None:
    t = new_task(
        "k",
        "send_invoice",
        b"p",
        id="inv-1",
        durability="G",
        max_attempts=7,
        deadline=1.91e9,
        now=1.9e9,
    )
    assert (t.id, t.kind, t.payload, t.durability, t.max_attempts, t.deadline) == (
        "inv-1",
        "send_invoice",
        b"p",
        Durability.GLOBAL,
        7,
        1.91e9,
    )


def test_payload_limit_is_configurable() -> None:
    with pytest.raises(InvalidArgument, match="10-byte limit"):
        new_task("k", "noop", b"x" * 11, limits=Limits(max_payload_bytes=10))


def test_message_names_field_value_and_fix() -> None:
    with pytest.raises(InvalidArgument) as err:
        new_task("k", "noop", scheduled_at=32503680000.0, now=1.9e9)
    msg = str(err.value)
    assert "scheduled_at" in msg and "32503680000.0" in msg and "not milliseconds" in msg


def test_key_limit_counts_utf8_bytes() -> None:
    new_task("é" * 512, "noop")  # 1024 bytes: allowed
    with pytest.raises(InvalidArgument, match="1026 bytes"):
        new_task("é" * 513, "noop")


def test_settings_from_yaml_env_and_overrides(tmp_path: object) -> None:
    import pathlib

    path = pathlib.Path(str(tmp_path)) / "hp.yaml"
    path.write_text("region: eu-west\npartitions: 32\nredis_cluster: true\n")
    s = Settings.load(
        path, env={"HOMEPORT_PARTITIONS": "64", "HOMEPORT_BLOCK_MS": "5"}, lease_ttl_s=2.5
    )
    assert (s.region, s.partitions, s.redis_cluster, s.block_ms, s.lease_ttl_s) == (
        "eu-west",
        64,
        True,
        5,
        2.5,
    )


def test_settings_refuse_bad_values() -> None:
    with pytest.raises(InvalidArgument, match="wait_timeout_ms"):
        Settings.load(env={"HOMEPORT_WAIT_TIMEOUT_MS": "0"})
    with pytest.raises(InvalidArgument, match="partitions"):
        Settings.load(env={"HOMEPORT_PARTITIONS": "many"})
    with pytest.raises(InvalidArgument, match="unknown setting"):
        Settings.load(env={}, colour="blue")


def test_assignment_is_even_and_complete() -> None:
    out = balance({}, ["w3", "w1", "w2"], 16)
    assert sorted(out) == list(range(16))
    loads = sorted(list(out.values()).count(w) for w in ("w1", "w2", "w3"))
    assert loads == [5, 5, 6]


def test_assignment_is_sticky_when_a_worker_joins() -> None:
    before = balance({}, ["a", "b"], 16)
    after = balance(before, ["a", "b", "c"], 16)
    moved = [p for p in range(16) if before[p] != after[p]]
    assert len(moved) == 5, "only the new worker's share moves"
    assert all(after[p] == "c" for p in moved)


def test_assignment_moves_only_a_dead_workers_partitions() -> None:
    before = balance({}, ["a", "b", "c", "d"], 16)
    after = balance(before, ["a", "b", "d"], 16)
    moved = {p for p in range(16) if before[p] != after[p]}
    assert moved == {p for p in range(16) if before[p] == "c"}
    assert balance(before, [], 16) == {}


def test_a_bad_setting_stops_the_worker_with_a_usage_error_naming_its_variable() -> None:
    # A child process: the worker command records its role in the environment, which
    # must not leak into the tests that run after this one.
    import os
    import subprocess
    import sys

    argv = [sys.executable, "-m", "homeport", "worker", "--app", "homeport.loadtest.apps:app"]
    env = {**os.environ, "HOMEPORT_PARTITIONS": "many"}
    got = subprocess.run([*argv, "--insecure"], env=env, capture_output=True, text=True, timeout=60)
    assert got.returncode == 2, got.stderr
    assert "invalid partitions='many'" in got.stderr and "HOMEPORT_PARTITIONS" in got.stderr
