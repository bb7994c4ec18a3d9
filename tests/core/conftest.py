"""Fixtures of the engine's tests, built on the session cluster of tests/conftest.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from homeport.core.broker import Broker
from homeport.core.settings import Settings
from homeport.core.store import RecordStore

REGION = "us-east"


def make_settings(redis_url: str, pg_dsn: str = "", **overrides: Any) -> Settings:
    """Settings tuned for tests: short leases and heartbeats, no admin port."""
    base: dict[str, Any] = dict(
        region=REGION,
        partitions=8,
        redis_url=redis_url,
        pg_dsn=pg_dsn,
        admin_port=-1,
        lease_ttl_s=1.5,
        heartbeat_s=0.1,
        trim_interval_s=0.2,
        shutdown_grace_s=5.0,
    )
    base.update(overrides)
    return Settings(**base)


@pytest.fixture
async def broker(redis_url: str) -> AsyncIterator[Broker]:
    b = Broker(redis_url)
    await b.connect()
    yield b
    await b.close()


@pytest.fixture
async def store(pg_dsn: str) -> AsyncIterator[RecordStore]:
    s = await RecordStore.connect(pg_dsn)
    await s.migrate()
    yield s
    await s.close()
