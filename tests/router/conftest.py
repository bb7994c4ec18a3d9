"""Fixtures for the gateway tests: in-process gateways on real Redis and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from homeport.core.settings import Settings
from homeport.router.client import AsyncClient
from homeport.router.gateway import Gateway
from homeport.router.settings import GatewaySettings

from tests.conftest import session_security

REGION = "us-east"
PARTITIONS = 16

GatewayFactory = Callable[..., Awaitable[Gateway]]


def engine_settings(redis_url: str, pg_dsn: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(
        region=REGION, partitions=PARTITIONS, redis_url=redis_url, pg_dsn=pg_dsn, admin_port=-1
    )
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
async def gateway_factory(redis_url: str, pg_dsn: str) -> AsyncIterator[GatewayFactory]:
    started: list[Gateway] = []

    async def make(**overrides: Any) -> Gateway:
        settings = GatewaySettings(listen="127.0.0.1:0", **overrides)
        gateway = Gateway(engine_settings(redis_url, pg_dsn), settings)
        await gateway.start()
        started.append(gateway)
        return gateway

    yield make
    for gateway in started:
        await gateway.stop(grace=0)


@pytest.fixture
async def gateway(gateway_factory: GatewayFactory) -> Gateway:
    return await gateway_factory()


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(gateway.address, timeout=5.0) as c:
        yield c


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    r = aioredis.Redis.from_url(redis_url, **session_security().redis_pool_kwargs())
    yield r
    await r.aclose()


@pytest.fixture
def migrated_pg_dsn(pg_dsn: str) -> str:
    """`pg_dsn` with the schema in place, applied by `homeport db migrate` as the operator
    (as a user does first): a gateway process logs in as `hp_gateway`, which reads the
    records but may not create tables."""
    subprocess.run(
        [sys.executable, "-m", "homeport", "db", "migrate", "--pg-dsn", pg_dsn],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return pg_dsn
