"""WRONG_REGION: a gateway refuses a key pinned to another region, naming that region's
gateway and epoch, and the SDK follows the redirect."""

from __future__ import annotations

import grpc
import pytest
from homeport.core.partitioner import partition_of
from homeport.router.client import AsyncClient, RetryPolicy
from homeport.router.errors import RetryableError, WrongRegionError
from homeport.router.gateway import Gateway
from homeport.router.serving import StaticServing
from homeport.router.settings import GatewaySettings

from tests.router.conftest import PARTITIONS, engine_settings


def _pin(key: str) -> str | None:
    return "eu-west" if key.startswith("eu:") else None


async def test_sdk_follows_wrong_region_to_the_owner(redis_url: str, pg_dsn: str) -> None:
    eu = Gateway(
        engine_settings(redis_url, pg_dsn, region="eu-west"),
        GatewaySettings(listen="127.0.0.1:0", epoch=4),
    )
    await eu.start()
    us_engine = engine_settings(redis_url, pg_dsn)
    serving = StaticServing(
        "us-east", PARTITIONS, 0, partition_of=partition_of, pin=_pin,
        gateways={"eu-west": eu.address},
    )  # fmt: skip
    us = Gateway(us_engine, GatewaySettings(listen="127.0.0.1:0"), serving=serving)
    await us.start()
    try:
        async with AsyncClient(us.address, retry=RetryPolicy(attempts=1)) as strict:
            with pytest.raises(WrongRegionError) as err:
                await strict.submit("noop", "eu:customer-1")
        assert err.value.status == grpc.StatusCode.FAILED_PRECONDITION
        assert err.value.redirect.owner_region == "eu-west"
        assert err.value.redirect.gateway == eu.address
        async with AsyncClient(us.address) as client:
            done = await client.submit("noop", "eu:customer-1")
            assert done.partition.startswith("eu-west/")
            assert client.stats.redirects == 1
            assert client.routing.gateway_for("eu:customer-1") == eu.address
            local = await client.submit("noop", "us:customer-2")
            assert local.partition.startswith("us-east/")
    finally:
        await us.stop(grace=0)
        await eu.stop(grace=0)


async def test_redirect_to_a_dead_gateway_ends_in_a_retryable_unavailable(
    redis_url: str, pg_dsn: str
) -> None:
    """A gateway names the owner's gateway, which is down (its region was just lost):
    the SDK tries it, reloads its routes, and when its attempts run out says "retry"
    (UNAVAILABLE), never FAILED_PRECONDITION WRONG_REGION, which callers treat as final."""
    import socket

    with socket.socket() as s:  # a port nothing listens on: the dead gateway
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    serving = StaticServing(
        "us-east", PARTITIONS, 0, partition_of=partition_of, pin=_pin,
        gateways={"eu-west": dead},
    )  # fmt: skip
    us = Gateway(engine_settings(redis_url, pg_dsn), GatewaySettings(listen="127.0.0.1:0"),
                 serving=serving)  # fmt: skip
    await us.start()
    try:
        policy = RetryPolicy(attempts=4, backoff_base_s=0.01, backoff_cap_s=0.02)
        async with AsyncClient(us.address, retry=policy, timeout=1.0) as client:
            with pytest.raises(RetryableError) as err:
                await client.submit("noop", "eu:customer-1")
            assert err.value.status == grpc.StatusCode.UNAVAILABLE
            assert client.stats.redirects >= 1, "the redirect was followed"
            assert client.stats.calls == 4
    finally:
        await us.stop(grace=0)
