"""Session fixtures: the real local cluster, started by the same launcher users run.

- `dev_cluster`: three single-mode regions (us-east, eu-west, ap-south), started once.
- `redis_cluster`: a one-region cluster whose Redis is a real 3-master Redis Cluster,
  started the first time a test asks for it.
- `redis_url`, `redis_cluster_url`: a region's Redis, flushed before each test.
- `pg_dsn`: a fresh, empty PostgreSQL database per test, dropped afterwards.

These clusters are secure, as `homeport dev up` is by default: the session makes one set
of credentials and one CA (`pytest_configure`), every shared cluster uses it, and
`HOMEPORT_SECURITY_FILE` names it, so the code under test (and the workers and gateways
tests start) connects as a user does, with the operator's credentials over TLS, from
plain `redis://` URLs and DSNs. `HOMEPORT_TEST_INSECURE=1` runs them `--insecure` (to
measure what security costs the suite, or to tell a security failure from another).

State directories live under /tmp with mode 0755 (pytest's own tmp tree is 0700, which
the `postgres` user that PostgreSQL runs as could not enter).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import inspect
import os
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
import yaml
from homeport.core.app import App
from homeport.core.security import FILE_ENV, Identity, load_security
from homeport.core.settings import Settings
from homeport.core.worker import Worker
from homeport.regions import security
from homeport.regions.control import ControlPlane
from homeport.regions.devcluster import ClusterSpec, DevCluster
from homeport.regions.servers import Binaries
from homeport.regions.topology import Topology, split_address
from homeport.router.client import AsyncClient, RetryPolicy
from homeport.router.etcd_routing import EtcdRoutingTable

from homeport.cli import sigterm_interrupts

INSECURE_ENV = "HOMEPORT_TEST_INSECURE"
_SECURITY_DIR = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    """SIGTERM (a CI timeout, `timeout`, a killed job) ends the run like Ctrl-C, so the
    session fixtures still stop the clusters they started instead of leaking them.

    Then the session's credentials and CA, shared by its clusters, named by
    `HOMEPORT_SECURITY_FILE` for this process and the ones tests start."""
    sigterm_interrupts()
    if os.environ.get(INSECURE_ENV, "").lower() in ("1", "true", "yes"):
        return
    folder = make_state_dir("security")
    config.stash[_SECURITY_DIR] = folder
    section = security.generate(folder).model_dump(mode="json", exclude_none=True)
    path = folder / "security.yaml"
    path.write_text(yaml.safe_dump({"security": section}, sort_keys=False))
    os.environ[FILE_ENV] = str(path)


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = config.stash.get(_SECURITY_DIR, None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def session_security() -> Identity:
    """The operator's view of the session's credentials (anonymous when insecure)."""
    path = os.environ.get(FILE_ENV)
    return Identity.of(load_security(Path(path)) if path else None, "operator")


def insecure_flag() -> list[str]:
    """What a worker or gateway process a test starts needs on its command line: nothing
    (it finds the session's credentials in HOMEPORT_SECURITY_FILE), or `--insecure`."""
    return [] if session_security().config is not None else ["--insecure"]


def redis_for(url: str) -> redis.Redis:
    """A client of the Redis at `url` (`redis://host:port/db`) with the operator's
    credentials and TLS."""
    host, port = split_address(url.split("://", 1)[1].split("/", 1)[0])
    return redis.Redis(host=host, port=port, **session_security().redis_kwargs())


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
    owner = Identity.of(topo.security, "operator").pg_kwargs()
    conn = await asyncpg.connect(topo.region(home).postgres, **owner)
    try:
        return {r["id"]: r["status"] for r in await conn.fetch("SELECT id, status FROM tasks")}
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def running_worker(app: App, settings: Settings, **kw: Any) -> AsyncIterator[Worker]:
    """An in-process worker, started and owning its partitions; stopped gracefully."""
    w = Worker(app, settings, **kw)
    await w.start()
    task = asyncio.create_task(w.run())

    async def owns_all() -> bool:
        return w.membership is not None and len(w.membership.consumers) == settings.partitions

    try:
        await wait_for(owns_all, 10, "the worker to own every partition")
        yield w
    finally:
        if not w.stop_requested:
            w.request_stop()
        await asyncio.wait_for(task, 30)


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
    """Start a cluster with the session's credentials (module docstring), or --insecure
    when the session runs without them or `spec` says so."""
    state = make_state_dir(prefix)
    made.append(state)
    cluster = DevCluster(state / "cluster")
    shared = session_security().config
    cluster.up(
        dataclasses.replace(spec, insecure=spec.insecure or shared is None, shared_security=shared)
    )
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


@functools.cache
def _admin_redis(address: str) -> redis.Redis:
    """One operator connection per node for the session: a new TLS connection costs
    redis-py a load of the system's CA bundle (docs/security.md, Costs)."""
    host, port = split_address(address)
    return redis.Redis(host=host, port=port, **session_security().redis_kwargs())


def _flush(address: str) -> None:
    client = _admin_redis(address)
    client.flushall()
    client.script_flush()


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


def _psql(cluster: DevCluster, sql: str, database: str = "postgres") -> None:
    """As the superuser, over the Unix socket in the cluster's state directory (TCP
    wants a role's password over TLS when the cluster is secure)."""
    server = cluster.topology.region("us-east").postgres.split("@", 1)[1].split("/", 1)[0]
    port = split_address(server)[1]
    subprocess.run(
        [str(Binaries().pg_bindir / "psql"), "-h", str(cluster.state_dir / "postgres"),
         "-p", str(port), "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1", "-q",
         "-c", sql],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip


@pytest.fixture
def pg_dsn(dev_cluster: DevCluster) -> Iterator[str]:
    """A fresh, empty database on the cluster's PostgreSQL server, dropped afterwards.
    On a secure cluster the owner role owns it (the tests' migrations run as the
    operator) and the worker and gateway roles get their grants, as `dev up` does."""
    dsn = dev_cluster.topology.region("us-east").postgres
    config = dev_cluster.topology.security
    name = f"test_{uuid.uuid4().hex[:12]}"
    owner = security.pg_owner(config) if config is not None and not config.insecure else None
    _psql(dev_cluster, f'CREATE DATABASE "{name}"' + (f' OWNER "{owner}"' if owner else ""))
    if config is not None and owner is not None:
        _psql(dev_cluster, f'SET ROLE "{owner}";\n{security.pg_grants_sql(config, name)}', name)
    yield dsn.rsplit("/", 1)[0] + f"/{name}"
    _psql(dev_cluster, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failed test on a cluster carries its agents' warnings (the controller's
    judgements and promotions, lost leases) in the report, so a CI log that shows only
    pytest's output still tells a failover the test did not make from a bug of its own."""
    report = yield
    if report.failed and call.when == "call":
        funcargs = getattr(item, "funcargs", {})
        for cluster in {id(v): v for v in funcargs.values() if isinstance(v, DevCluster)}.values():
            report.sections.append(("cluster warnings", _cluster_warnings(cluster)))
    return report


def _cluster_warnings(cluster: DevCluster, most: int = 40) -> str:
    lines: list[str] = []
    for log in sorted(cluster.logs.glob("agent-*.log")):
        for line in log.read_text(errors="replace").splitlines():
            if "WARNING" in line or "ERROR" in line:
                lines.append(f"{log.stem}: {line}")
    shown = lines[-most:]
    head = f"{len(lines)} warning lines in {cluster.logs}/agent-*.log, the last {len(shown)}:"
    return "\n".join([head, *shown])
