"""Multi-region behaviour of the whole system (gateways, agents, workers, controller) on
real processes, with faults cut through Toxiproxy."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from homeport.core.keys import RegionKeys
from homeport.core.security import Identity
from homeport.regions import stores
from homeport.regions.control import ControlPlane
from homeport.regions.devcluster import DevCluster
from homeport.regions.placement import home_region
from homeport.regions.promotion import failback, promote
from homeport.regions.routing import Route
from homeport.regions.topology import Topology, split_address
from homeport.regions.toxiproxy import ToxiproxyClient
from homeport.router.client import AsyncClient, RetryPolicy
from homeport.router.errors import GatewayError, NotReplicatedError
from homeport.router.etcd_routing import EtcdRoutingTable

from tests.conftest import record_statuses, sdk_for, start_services, wait_for

A, B = "us-east", "eu-west"


@pytest.fixture(scope="module")
def system(state_dir_factory: list[Path]) -> Iterator[DevCluster]:
    yield from start_services("multi", state_dir_factory)


@pytest.fixture
def tox(system: DevCluster) -> Iterator[ToxiproxyClient]:
    assert system.topology.toxiproxy is not None
    client = ToxiproxyClient(system.topology.toxiproxy.api)
    yield client
    client.reset()
    client.close()


@pytest.fixture
async def sdk(system: DevCluster) -> AsyncIterator[AsyncClient]:
    async with sdk_for(system) as client:
        yield client


def _keys_of(topo: Topology, home: str, n: int) -> list[str]:
    keys = (f"k-{i}" for i in range(10_000))
    return [k for k in keys if home_region(k, topo) == home][:n]


async def test_stale_sdk_route_is_corrected_by_a_redirect(
    system: DevCluster, sdk: AsyncClient
) -> None:
    topo = system.topology
    key = _keys_of(topo, A, 1)[0]
    table = sdk.routing
    assert isinstance(table, EtcdRoutingTable)
    # Make the cached route stale: it claims ap-south serves us-east.
    table._routes[A] = Route(A, "ap-south", 0)
    assert table.gateway_for(key) == topo.dial(
        "client", "ap-south", "gateway", topo.region("ap-south").gateway or ""
    )
    submitted = await sdk.submit("noop", key, durability="LOCAL")
    assert sdk.stats.redirects == 1, "the wrong gateway answered WRONG_REGION once"
    assert submitted.partition.startswith(f"{A}/")
    route = table.route(A)
    assert route is not None and route.serving == A and route.epoch >= 1


async def test_a_delayed_task_is_announced_to_its_owner_and_runs(
    system: DevCluster, sdk: AsyncClient
) -> None:
    """Each role under its own Redis ACL user: the gateway's enqueue script publishes the
    delayed task's notice (a refused PUBLISH would fail the submit) and the workers'
    forwarders listen (a refused SUBSCRIBE leaves the channel without listener)."""
    topo = system.topology
    key = _keys_of(topo, A, 1)[0]
    submitted = await sdk.submit("noop", key, durability="LOCAL", scheduled_at=time.time() + 0.5)

    async def ran() -> bool:
        return (await record_statuses(topo, A)).get(submitted.task_id) == "succeeded"

    await wait_for(ran, 20, "the delayed task to run")
    host, port = split_address(topo.region(A).redis.primary or "")
    admin = stores.client(host, port, 2.0, Identity.of(topo.security, "operator"))
    try:
        [(_, listeners)] = await admin.pubsub_numsub(RegionKeys(A).due)
    finally:
        await admin.aclose()
    assert listeners >= 1, "no worker listens for us-east's delayed-task notices"


async def test_global_submit_is_refused_when_the_mirror_link_is_cut(
    system: DevCluster, sdk: AsyncClient, tox: ToxiproxyClient
) -> None:
    key = _keys_of(system.topology, A, 1)[0]
    await sdk.submit("noop", key, durability="GLOBAL")  # the link is up: acknowledged
    tox.set_enabled(f"{B}->{A}:redis", False)  # the mirror's replication link
    with pytest.raises(GatewayError) as info:
        await sdk.submit("noop", key, durability="GLOBAL", id=f"g-{uuid.uuid4().hex}")
    assert info.value.reason == "NOT_REPLICATED"
    ok = await sdk.submit("noop", key, durability="REGION")  # the in-region replica is up
    assert not ok.duplicate


async def test_global_waits_do_not_starve_local_submits_while_the_mirror_is_cut(
    system: DevCluster, tox: ToxiproxyClient
) -> None:
    """Hundreds of GLOBAL submits each hold a Redis connection in WAIT for a second while
    the mirror is unreachable; LOCAL submits to the same home must still be acked (they
    were refused with MaxConnectionsError when both shared redis-py's default pool)."""
    keys = _keys_of(system.topology, A, 40)
    table = await EtcdRoutingTable.open(system.topology)
    client = AsyncClient(table, timeout=10.0, retry=RetryPolicy(attempts=1))
    tox.set_enabled(f"{B}->{A}:redis", False)
    try:

        async def one(i: int, level: str) -> str:
            try:
                await client.submit("noop", keys[i % len(keys)], durability=level)
                return "acked"
            except GatewayError as exc:
                return exc.reason or exc.status.name

        global_calls = [one(i, "GLOBAL") for i in range(300)]
        local_calls = [one(i, "LOCAL") for i in range(100)]
        got = await asyncio.gather(*global_calls, *local_calls)
    finally:
        await client.close()
        await table.close()
    globals_, locals_ = got[:300], got[300:]
    assert locals_.count("acked") == 100, sorted(set(locals_))
    assert globals_.count("NOT_REPLICATED") >= 200, "the mirror cut really held the WAITs"
    assert set(globals_) <= {"NOT_REPLICATED", "UNAVAILABLE"}, sorted(set(globals_))


async def test_manual_promote_and_failback_under_load_lose_no_global_task(
    system: DevCluster, sdk: AsyncClient
) -> None:
    topo = system.topology
    keys = _keys_of(topo, B, 8)  # eu-west's keys: its standby is ap-south
    acked: dict[str, str] = {}
    acked_at: list[tuple[float, str]] = []
    errors: list[str] = []
    stop = asyncio.Event()

    async def served_since(since: float, durability: str = "LOCAL", n: int = 20) -> bool:
        return sum(1 for t, d in acked_at if t > since and d == durability) >= n

    async def drive(key: str, durability: str) -> None:
        seq = 0
        while not stop.is_set():
            task_id = f"m-{key}-{seq}-{uuid.uuid4().hex[:4]}"
            try:
                await sdk.submit("noop", key, str(seq).encode(), id=task_id, durability=durability)
                acked[task_id] = durability
                acked_at.append((time.monotonic(), durability))
            except GatewayError as exc:
                errors.append(f"{durability} {exc.reason or exc.status.name}")
            seq += 1
            await asyncio.sleep(0.05)

    drivers = [
        asyncio.create_task(drive(k, ("GLOBAL", "LOCAL")[i % 2])) for i, k in enumerate(keys)
    ]
    plane = await ControlPlane.open(topo, "client")
    try:
        t0 = time.monotonic()
        await wait_for(lambda: served_since(t0, "GLOBAL"), 30, "GLOBAL load acknowledged")
        steps: list[str] = []
        report = await promote(plane, B, "ap-south", say=steps.append)
        assert report.old_home_fenced and report.mirror_caught_up, steps
        t1 = time.monotonic()
        await wait_for(lambda: served_since(t1), 30, "LOCAL load acknowledged on the standby")
        back = await failback(plane, B, switch=True, say=steps.append)
        assert back.switched and back.in_sync, steps
        t2 = time.monotonic()
        await wait_for(lambda: served_since(t2), 30, "LOCAL load acknowledged after failback")
        route = (await plane.routing.load()).route(B)
        assert (route.serving, route.copy) == (B, "primary")
    finally:
        stop.set()
        await asyncio.gather(*drivers)
        await plane.close()
    assert sum(d == "GLOBAL" for d in acked.values()) > 20, "GLOBAL load was acknowledged"
    # While failed over, GLOBAL submits are refused (no copy outside ap-south): designed.
    assert [e for e in errors if not e.startswith("GLOBAL")] == []

    async def all_ran() -> bool:
        status = await record_statuses(topo, B)
        return all(status.get(t) == "succeeded" for t in acked)

    await wait_for(all_ran, 120, "every acknowledged task to run")
    print(f"\nmanual round trip: {len(acked)} acked, all ran; {len(errors)} GLOBAL refusals")


async def test_isolated_region_stops_writing_is_failed_over_and_its_orphans_recovered(
    system: DevCluster, sdk: AsyncClient, tox: ToxiproxyClient
) -> None:
    topo = system.topology
    keys = _keys_of(topo, A, 6)
    direct = AsyncClient(
        topo.dial("client", A, "gateway", topo.region(A).gateway or ""),
        timeout=1.0,
        retry=RetryPolicy(attempts=1),
    )
    acked: dict[str, float] = {}
    plane = await ControlPlane.open(topo, B)
    try:
        for key in keys:
            acked[(await sdk.submit("noop", key, durability="GLOBAL")).task_id] = time.monotonic()
        # Cut us-east's processes from every other region and from etcd; clients still
        # reach its gateway. (Its etcd member's Raft links stay: a peer proxy carries only
        # inbound traffic, and cutting it half-way costs the whole cluster an election.)
        isolating = re.compile(
            rf"^({A}->(?!{A}:)|(?!client|peers|{A}->)[a-z-]+->{A}:|{A}->{A}:etcd)"
        )
        cut = [name for name in tox.proxies() if isolating.match(name)]
        assert f"{A}->{A}:etcd" in cut and f"{B}->{A}:redis" in cut
        for name in cut:
            tox.set_enabled(name, False)
        cut_at = time.monotonic()
        last_direct = cut_at
        refused_at: float | None = None
        errors: list[str] = []
        while time.monotonic() - cut_at < 8:
            key = keys[int(time.monotonic() * 10) % len(keys)]
            try:
                # Scheduled ahead: they wait in us-east's delayed set, unexecuted, so the
                # ones the mirror never got must come back as orphans at failback.
                s = await direct.submit(
                    "noop", key, durability="LOCAL", id=f"o-{uuid.uuid4().hex}",
                    scheduled_at=time.time() + 25,
                )  # fmt: skip
                acked[s.task_id] = last_direct = time.monotonic()
            except GatewayError as exc:
                errors.append(f"{time.monotonic() - cut_at:.2f}s {exc.status.name} {exc}")
                if exc.status.name == "UNAVAILABLE":
                    refused_at = refused_at or time.monotonic()
            await asyncio.sleep(0.05)
        assert refused_at is not None, "the isolated gateway never stopped writing"
        assert last_direct - cut_at < 3.5, (
            f"isolated gateway wrote {last_direct - cut_at:.1f}s after the cut"
        )

        async def promoted() -> bool:
            try:
                route = (await plane.routing.load()).route(A)
            except Exception:  # noqa: BLE001 - etcd may be electing
                return False
            return route.serving == B

        await wait_for(promoted, 20, f"{A} to be promoted to {B}")
        for key in keys:  # served again, from the promoted mirror
            acked[(await sdk.submit("noop", key, durability="LOCAL")).task_id] = time.monotonic()
        tox.reset()  # heal
        report = await failback(plane, A, switch=True)
        assert report.switched and report.in_sync
        orphan_ids = {o.task_id for o in report.orphans}
        after_cut = {t for t in acked if t.startswith("o-")}
        assert after_cut, f"the isolated gateway acknowledged nothing: {errors[:3]}"
        assert after_cut <= orphan_ids, "a write accepted after the cut was not recovered"

        async def all_ran() -> bool:
            status = await record_statuses(topo, A)
            return all(status.get(t) == "succeeded" for t in acked)

        await wait_for(all_ran, 120, "every acknowledged task to run")
        print(f"\nisolation: {len(acked)} acked, {len(orphan_ids)} orphans recovered, 0 lost")
    finally:
        await direct.close()
        await plane.close()


def test_readme_python_example_runs_as_written(system: DevCluster, tmp_path: Path) -> None:
    """The README's script, byte for byte, from a directory whose `.homeport` is the
    running cluster's state: a newcomer's first program must work."""
    import subprocess
    import sys

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    script = next(b for b in blocks if "asyncio.run(main())" in b)
    (tmp_path / ".homeport").symlink_to(system.state_dir)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert re.match(r"task \S+ queued in [a-z]+-[a-z]+/\d+$", done.stdout.strip()), done.stdout


async def test_any_gateway_answers_for_any_task_also_while_its_home_is_failed_over(
    system: DevCluster, sdk: AsyncClient
) -> None:
    """Issue 18 point 1: every region's gateway finds a task of eu-west (waiting in its
    Redis, or recorded in its database) and, after eu-west is promoted to ap-south, finds
    the waiting one on the promoted mirror."""
    topo = system.topology
    key = _keys_of(topo, B, 1)[0]
    later_id = f"v-later-{uuid.uuid4().hex[:6]}"
    accepted: list[Any] = []

    async def global_accepted() -> bool:
        """An earlier test's failback may leave eu-west's mirror resyncing for a while:
        GLOBAL is refused until it is linked again; resubmitted with the same id."""
        with contextlib.suppress(NotReplicatedError):
            accepted.append(await sdk.submit("noop", key, id=later_id,
                            scheduled_at=time.time() + 600, durability="GLOBAL"))  # fmt: skip
        return bool(accepted)

    await wait_for(global_accepted, 60, f"a GLOBAL submit to {B} accepted (NOT_REPLICATED)")
    later = accepted[0]
    now = await sdk.submit("noop", key, id=f"v-now-{uuid.uuid4().hex[:6]}")
    gateways = {
        r.name: topo.dial("client", r.name, "gateway", r.gateway or "") for r in topo.regions
    }
    clients = {name: AsyncClient(address, timeout=5.0) for name, address in gateways.items()}

    async def seen_everywhere(task_id: str) -> set[tuple[str, str, str]]:
        got = [await c.get(task_id) for c in clients.values()]
        return {(t.status, t.region, t.partition) for t in got}

    plane = await ControlPlane.open(topo, "client")
    try:
        assert await seen_everywhere(later.task_id) == {("scheduled", B, later.partition)}

        async def ran() -> bool:
            return {s for s, _, _ in await seen_everywhere(now.task_id)} == {"succeeded"}

        await wait_for(ran, 30, "the run-now task's record, read from every gateway")
        steps: list[str] = []
        await promote(plane, B, "ap-south", say=steps.append)
        try:
            assert await seen_everywhere(later.task_id) == {("scheduled", B, later.partition)}
            cancelled = await clients["us-east"].cancel(later.task_id)  # no key: found
            assert cancelled.cancelled, steps
            assert {s for s, _, _ in await seen_everywhere(later.task_id)} == {"cancelled"}
        finally:
            back = await failback(plane, B, switch=True, say=steps.append)
            assert back.switched, steps
    finally:
        for client in clients.values():
            await client.close()
        await plane.close()
