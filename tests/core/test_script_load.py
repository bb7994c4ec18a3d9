"""Loading the Lua scripts (core/nodes.py): once per node, however many callers meet an
unloaded node at the same moment, and again after the node lost them."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from homeport.core.broker import Broker
from homeport.core.keys import RegionKeys
from homeport.core.nodes import _SCRIPTS

from tests.conftest import session_security

from .conftest import REGION


async def _loads(admin: aioredis.Redis) -> int:
    stats = await admin.info("commandstats")
    return int(stats.get("cmdstat_script|load", {}).get("calls", 0))


async def test_callers_meeting_an_unloaded_node_share_one_load_of_the_scripts(
    redis_url: str,
) -> None:
    host, _, port = redis_url.removeprefix("redis://").partition("/")[0].rpartition(":")
    admin = aioredis.Redis(host=host, port=int(port), **session_security().redis_kwargs())
    broker = Broker(redis_url)
    await broker.connect()
    try:
        await admin.config_resetstat()
        keys = [RegionKeys(REGION).partition(p) for p in range(16)]
        # A worker's start: every partition's lease at once, each call a script.
        tokens = await asyncio.gather(
            *(broker.acquire(pk.lease, pk.fence, "w1", 10_000) for pk in keys)
        )
        assert all(t > 0 for t in tokens)
        assert await _loads(admin) == len(_SCRIPTS)  # one load, not one per caller

        # The node lost its scripts (a restart or failover): the next call loads them again.
        await admin.script_flush()
        await admin.config_resetstat()
        results = await asyncio.gather(
            *(broker.acquire(pk.lease, pk.fence, "w1", 10_000) for pk in keys)
        )
        assert all(t > 0 for t in results)
        assert len(_SCRIPTS) <= await _loads(admin) <= 16 * len(_SCRIPTS)
    finally:
        await broker.close()
        await admin.aclose()
