"""Session fixtures: the real local cluster, started by the same launcher users run.

- `dev_cluster`: three single-mode regions (us-east, eu-west, ap-south), started once.
- `redis_cluster`: a one-region cluster whose Redis is a real 3-master Redis Cluster,
  started the first time a test asks for it.
- `redis_url`, `redis_cluster_url`: a region's Redis, flushed before each test.
- `pg_dsn`: a fresh, empty PostgreSQL database per test, dropped afterwards.

State directories live under /tmp with mode 0755 (pytest's own tmp tree is 0700, which
the `postgres` user that PostgreSQL runs as could not enter).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis
from homeport.regions.control import ControlPlane
from homeport.regions.devcluster import ClusterSpec, DevCluster
from homeport.regions.servers import Binaries
from homeport.regions.topology import Topology, split_address
from homeport.router.client import AsyncClient, RetryPolicy
from homeport.router.etcd_routing import EtcdRoutingTable

from homeport.cli import sigterm_interrupts


def pytest_configure(config: pytest.Config) -> None:
    """SIGTERM (a CI timeout, `timeout`, a killed job) ends the run like Ctrl-C, so the
    session fixtures still stop the clusters they started instead of leaking them."""
    sigterm_interrupts()


async def _holds(cond: Callable[[], bool | Awaitable[bool]]) -> bool:
    result = cond()
    return await result if inspect.isawaitable(result) else result


async def wait_for(
    cond: Callable[[], bool | Awaitable[bool]], timeout: float, what: str, poll: float = 0.05
) -> float:
    """Poll `cond` (a plain or an async predicate) until it holds, and return the
    monotonic time it did; fail the test naming `what` after `timeout` seconds. The one
    wait of the suite: tests wait for a state, never for a fixed time."""
    deadline = time.monotonic() + timeout
    while not await _holds(cond):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(poll)
    return time.monotonic()


def wait_for_sync(cond: Callable[[], bool], timeout: float, what: str, poll: float = 0.05) -> float:
    """`wait_for` for a plain predicate, in synchronous tests."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(poll)
    return time.monotonic()


async def record_statuses(topo: Topology, home: str) -> dict[str, str]:
    """Record status per task id, from `home`'s own database (the others may be down)."""
    conn = await asyncpg.connect(topo.region(home).postgres)
    try:
        return {r["id"]: r["status"] for r in await conn.fetch("SELECT id, status FROM tasks")}
    finally:
        await conn.close()


def make_state_dir(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=f"homeport-{prefix}-"))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="session")
def state_dir_factory() -> Iterator[list[Path]]:
    made: list[Path] = []
    yield made
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


def start_services(prefix: str, made: list[Path], **spec: Any) -> Iterator[DevCluster]:
    """A three-region cluster with its services (gateways, agents and the workers of the
    load-test app), for a module's system tests; `spec` overrides ClusterSpec fields."""
    base = ClusterSpec.default(3, partitions=8)
    full = dataclasses.replace(base, services="homeport.loadtest.apps:app", **spec)
    yield from _start(full, prefix, made)


@contextlib.asynccontextmanager
async def sdk_for(cluster: DevCluster, **options: Any) -> AsyncIterator[AsyncClient]:
    """The region-aware SDK over the cluster's etcd routing table, with retries as an SDK
    user would set them: losing a region may cost an etcd election, which the other
    regions' gateways absorb by pausing writes, and retries must outlast."""
    table = await EtcdRoutingTable.open(cluster.topology)
    options = {"timeout": 2.0, "retry": RetryPolicy(attempts=8, backoff_cap_s=0.5), **options}
    client = AsyncClient(table, **options)
    try:
        yield client
    finally:
        await client.close()
        await table.close()


def assert_per_key_order(ops: list[Any], spans: dict[str, tuple[float, float, int]]) -> None:
    """Per-key order over every task that ran (`loadtest.demo` ops and record spans):
    starts in submission order, each after the previous task of its key finished."""
    for key in sorted({o.key for o in ops}):
        ran = sorted((o.seq, o.task_id) for o in ops if o.key == key and o.task_id in spans)
        for (_, prev), (_, nxt) in zip(ran, ran[1:], strict=False):
            assert spans[nxt][0] >= spans[prev][1] - 1e-3, f"order broken on {key}: {prev} {nxt}"


async def control_plane(cluster: DevCluster, src: str) -> AsyncIterator[ControlPlane]:
    """A control plane on `cluster` as a process of region `src` sees it, with the
    routing table bootstrapped: the body of the failover tests' `cp` fixtures."""
    plane = await ControlPlane.open(cluster.topology, src)
    await plane.routing.bootstrap(plane.topology)
    yield plane
    await plane.close()


def _start(spec: ClusterSpec, prefix: str, made: list[Path]) -> Iterator[DevCluster]:
    state = make_state_dir(prefix)
    made.append(state)
    cluster = DevCluster(state / "cluster")
    # The engine and system tests hand plain URLs and DSNs to code under test, so their
    # clusters run --insecure; tests/security starts secure ones (docs/security.md).
    cluster.up(dataclasses.replace(spec, insecure=True))
    try:
        yield cluster
    finally:
        cluster.down()


@pytest.fixture(scope="session")
def dev_cluster(state_dir_factory: list[Path]) -> Iterator[DevCluster]:
    yield from _start(ClusterSpec.default(3, partitions=16), "dev", state_dir_factory)


@pytest.fixture(scope="session")
def topology(dev_cluster: DevCluster) -> Topology:
    return dev_cluster.topology


@pytest.fixture(scope="session")
def redis_cluster(state_dir_factory: list[Path]) -> Iterator[DevCluster]:
    spec = ClusterSpec.default(1, partitions=16, cluster_regions=("us-east",))
    yield from _start(spec, "rcluster", state_dir_factory)


def _flush(address: str) -> None:
    host, port = split_address(address)
    client = redis.Redis(host=host, port=port)
    try:
        client.flushall()
        client.script_flush()
    finally:
        client.close()


@pytest.fixture
def redis_url(topology: Topology) -> str:
    """Region us-east's Redis primary (2 replicas: in-region and mirror), flushed."""
    primary = topology.region("us-east").redis.primary
    if primary is None:
        raise RuntimeError("us-east of the test cluster is expected in single mode")
    _flush(primary)
    return f"redis://{primary}/0"


@pytest.fixture
def redis_cluster_url(redis_cluster: DevCluster) -> str:
    """A seed node of a real 3-master Redis Cluster (each master has 2 replicas), flushed."""
    nodes = redis_cluster.topology.region("us-east").redis.nodes
    for node in nodes:
        _flush(node)
    return f"redis://{nodes[0]}"


def _psql(dsn_server: str, sql: str) -> None:
    host, port = split_address(dsn_server)
    subprocess.run(
        [str(Binaries().pg_bindir / "psql"), "-h", host, "-p", str(port), "-U", "postgres",
         "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-q", "-c", sql],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip


@pytest.fixture
def pg_dsn(topology: Topology) -> Iterator[str]:
    """A fresh, empty database on the cluster's PostgreSQL server, dropped afterwards."""
    dsn = topology.region("us-east").postgres
    server = dsn.split("@", 1)[1].split("/", 1)[0]
    name = f"test_{uuid.uuid4().hex[:12]}"
    _psql(server, f'CREATE DATABASE "{name}"')
    yield dsn.rsplit("/", 1)[0] + f"/{name}"
    _psql(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
