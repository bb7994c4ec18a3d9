"""The local cluster launcher: real processes up and down, links through Toxiproxy."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from homeport.regions.devcluster import ClusterSpec, DevCluster
from homeport.regions.errors import LaunchError
from homeport.regions.processes import ProcessTable, is_alive
from homeport.regions.servers import Binaries
from homeport.regions.topology import Topology, split_address
from homeport.regions.toxiproxy import ToxiproxyClient

from tests.conftest import make_state_dir, session_security, wait_for_sync

HOMEPORT = [sys.executable, "-m", "homeport"]


def _processes_mentioning(text: str) -> list[int]:
    """PIDs of live processes whose command line or working directory mentions `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if text in cmdline and ") Z " not in stat:
            found.append(int(entry.name))
    return found


def test_cli_up_status_down_leaves_no_process_behind() -> None:
    state = make_state_dir("cli") / "c"
    env = {**os.environ, "HOMEPORT_HOME": str(state)}
    up = subprocess.run(
        [*HOMEPORT, "dev", "up", "--regions", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    try:
        _up_status_down(state, env, up)
    finally:
        if (state / "processes.json").exists():
            DevCluster(state).down()


def _up_status_down(state: Path, env: dict[str, str], up: subprocess.CompletedProcess[str]) -> None:
    assert up.returncode == 0, up.stderr
    records = ProcessTable.load(state / "processes.json").records
    # 2 regions x (5 redis, the spare included + etcd + gateway + agent) + postgres +
    # toxiproxy
    assert len(records) == 18 and all(is_alive(r) for r in records)
    topology = DevCluster(state).topology
    primary = topology.region("us-east").redis.primary or ""
    primary_port = topology.dial("us-east", "us-east", "redis", primary)  # as workers dial it

    def workers() -> list[int]:
        """Worker processes the agents started for us-east (they dial its primary)."""
        return [
            p for p in _processes_mentioning(" worker ") if p in _processes_mentioning(primary_port)
        ]

    wait_for_sync(lambda: len(workers()) == 2, 30, "the us-east agent to start its two workers")
    status = subprocess.run(
        [*HOMEPORT, "dev", "status", "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    assert status.returncode == 0, status.stdout + status.stderr
    rows = json.loads(status.stdout)
    servers = [r for r in rows if r["kind"] != "worker"]
    assert len(servers) == 18 and all(r["healthy"] for r in servers)
    # Every worker is listed with its PID: per region two for its own home and two
    # parked on the mirror it holds for the other region.
    listed = {r["pid"] for r in rows if r["kind"] == "worker"}
    assert len(listed) == 8 and set(workers()) <= listed, (listed, workers())
    down = subprocess.run(
        [*HOMEPORT, "dev", "down"], env=env, capture_output=True, text=True, timeout=120
    )
    assert down.returncode == 0, down.stderr
    assert "stopped 18 processes" in down.stderr
    assert [r.name for r in records if is_alive(r)] == []
    # postgres forks helpers (checkpointer, walwriter...) and agents start workers; none
    # may outlive `down`
    assert _processes_mentioning(str(state)) == []
    assert workers() == []


def test_missing_binary_names_component_and_leaves_nothing_running() -> None:
    state = make_state_dir("missing") / "c"
    cluster = DevCluster(state, Binaries(etcd="/nonexistent/bin/etcd"))
    with pytest.raises(LaunchError) as info:
        cluster.up(dataclasses.replace(ClusterSpec.default(1), insecure=True))
    assert info.value.component == "etcd-us-east"
    assert "/nonexistent/bin/etcd" in str(info.value)
    records = ProcessTable.load(state / "processes.json").records
    assert {r.kind for r in records} >= {"toxiproxy", "postgres", "redis"}, "others were started"
    assert [r.name for r in records if is_alive(r)] == []
    assert _processes_mentioning(str(state)) == []


def test_component_that_exits_at_start_is_reported_with_its_log() -> None:
    state = make_state_dir("exits") / "c"
    cluster = DevCluster(state, Binaries(redis_server="/bin/false"))
    with pytest.raises(LaunchError) as info:
        cluster.up(dataclasses.replace(ClusterSpec.default(1), insecure=True))
    assert info.value.component.startswith("redis-us-east-")
    assert info.value.log is not None and info.value.log.name.endswith(".log")
    assert "exited before it was ready" in str(info.value)
    assert [
        r.name for r in ProcessTable.load(state / "processes.json").records if is_alive(r)
    ] == []


def test_every_expected_proxy_exists(topology: Topology) -> None:
    assert topology.toxiproxy is not None
    tox = ToxiproxyClient(topology.toxiproxy.api)
    names = set(tox.proxies())
    tox.close()
    expected = set()
    for region in topology.regions:
        a, b = region.name, region.standby
        expected |= {
            f"client->{a}:gateway", f"client->{a}:etcd", f"{a}->{a}:etcd",
            f"peers->{a}:etcd-peer", f"{a}->{a}:postgres",
        }  # fmt: skip
        expected |= {f"{src.name}->{a}:redis" for src in topology.regions}
        # Every region but the host reaches each mirror: its home at failback, the
        # others' spares when they re-protect it.
        expected |= {f"{src.name}->{b}:mirror" for src in topology.regions if src.name != b}
        expected |= {f"{src.name}->{a}:etcd" for src in topology.regions}
    assert names == expected


def _client(address: str) -> redis.Redis:
    host, port = split_address(address)
    auth = session_security().redis_kwargs()
    return redis.Redis(host=host, port=port, socket_timeout=1, socket_connect_timeout=1, **auth)


def test_disabled_proxy_cuts_the_connection_until_reenabled(topology: Topology) -> None:
    assert topology.toxiproxy is not None
    tox = ToxiproxyClient(topology.toxiproxy.api)
    primary = topology.region("us-east").redis.primary or ""
    via = topology.dial("us-east", "us-east", "redis", primary)
    assert via != primary, "region processes reach their primary through the proxy"
    client = _client(via)
    assert client.ping()
    tox.set_enabled("us-east->us-east:redis", False)
    try:
        with pytest.raises(redis.ConnectionError):
            client.ping()
        with pytest.raises(redis.ConnectionError):
            _client(via).ping()
    finally:
        tox.set_enabled("us-east->us-east:redis", True)
    assert _client(via).ping()
    tox.close()


def test_write_on_primary_reaches_cross_region_mirror_through_its_proxy(topology: Topology) -> None:
    assert topology.toxiproxy is not None
    us = topology.region("us-east")
    primary, mirror = _client(us.redis.primary or ""), _client(us.redis.mirror or "")
    primary.set("hp:mirror-probe", "1")
    wait_for_sync(
        lambda: mirror.get("hp:mirror-probe") == b"1", 5, "the mirror to receive the write"
    )
    tox = ToxiproxyClient(topology.toxiproxy.api)
    link = f"{us.standby}->us-east:redis"
    tox.set_enabled(link, False)
    try:
        primary.set("hp:mirror-probe", "2")
        # WAIT counts replicas that acknowledged: with the link down only the in-region one.
        assert primary.execute_command("WAIT", 2, 300) == 1
        assert mirror.get("hp:mirror-probe") == b"1"
    finally:
        tox.set_enabled(link, True)
    wait_for_sync(
        lambda: mirror.get("hp:mirror-probe") == b"2", 15, "the mirror to catch up after heal"
    )
    tox.close()


def test_dev_up_refuses_an_app_that_does_not_import_and_starts_nothing() -> None:
    state = make_state_dir("badapp") / "c"
    env = {**os.environ, "HOMEPORT_HOME": str(state)}
    up = subprocess.run(
        [*HOMEPORT, "dev", "up", "--app", "nosuchmod:app"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert up.returncode != 0
    assert "cannot import 'nosuchmod'" in up.stderr and "--app" in up.stderr, up.stderr
    assert not (state / "processes.json").exists(), "nothing was started"


def test_dev_up_refuses_a_directory_it_did_not_make_and_deletes_nothing() -> None:
    state = make_state_dir("notmine")
    keep = state / "notes.txt"
    keep.write_text("a user's file")
    up = subprocess.run(
        [*HOMEPORT, "dev", "up", "--servers-only", "--state-dir", str(state)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert up.returncode != 0
    assert "not empty and was not made by `homeport dev up`" in up.stderr, up.stderr
    assert keep.read_text() == "a user's file"
