"""Gateways refuse kinds no worker of the home has registered, once its workers have
announced their kinds (issue 18, point 3); before any worker announced (cold start),
every kind is accepted. Real gateway, Redis, PostgreSQL and worker."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from homeport.core.broker import Broker
from homeport.core.keys import RegionKeys
from homeport.router.client import AsyncClient
from homeport.router.errors import InvalidRequest
from homeport.router.views import NewTask

from tests.router import apps
from tests.router.conftest import REGION
from tests.router.test_end_to_end import run_worker_until_drained


async def test_unregistered_kinds_are_refused_once_workers_announced(
    client: AsyncClient, redis: aioredis.Redis, redis_url: str, pg_dsn: str
) -> None:
    cold = await client.submit("not_a_handler", "k-cold")  # no worker announced yet
    assert not cold.duplicate
    await run_worker_until_drained(redis_url, pg_dsn)  # a worker of apps.app started
    await asyncio.sleep(1.0)  # past the cold-start re-read interval (router/kinds.py)
    announced = {k.decode() for k in await redis.hkeys(RegionKeys(REGION).kinds)}
    assert announced == set(apps.app.kinds)

    with pytest.raises(InvalidRequest) as info:
        await client.submit("not_a_handler", "k1", id="refused-kind")
    assert info.value.field == "task.kind"
    assert "no worker of home region us-east has registered this kind" in info.value.message
    assert "echo" in info.value.message  # the registered kinds are listed
    assert await client.submit("echo", "k1")  # a registered kind is accepted
    items = await client.submit_many([NewTask("echo", "k2"), NewTask("nope", "k2")])
    assert items[0].ok and not items[1].ok
    assert isinstance(items[1].error, InvalidRequest)
    assert items[1].error.field == "tasks[1].kind"


async def test_a_kind_announced_a_moment_ago_is_accepted_at_once(
    client: AsyncClient, redis_url: str, pg_dsn: str
) -> None:
    await run_worker_until_drained(redis_url, pg_dsn)
    with pytest.raises(InvalidRequest):
        await client.submit("brand_new", "k3")  # the gateway now caches apps.app's kinds
    broker = Broker(redis_url)
    await broker.connect()
    try:
        await broker.announce_kinds(RegionKeys(REGION), ["brand_new"])  # a new worker
    finally:
        await broker.close()
    assert not (await client.submit("brand_new", "k3")).duplicate
