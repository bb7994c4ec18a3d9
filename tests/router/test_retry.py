"""A submit whose reply is lost to a timeout is retried with the same id and runs once."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from grpc import aio
from homeport.core.settings import Settings
from homeport.router.client import AsyncClient, RetryPolicy
from homeport.router.gateway import Gateway
from homeport.router.settings import GatewaySettings

from tests.router import apps
from tests.router.conftest import engine_settings
from tests.router.test_end_to_end import run_worker_until_drained


class SwallowFirstSubmitReply(aio.ServerInterceptor):  # type: ignore[type-arg]
    """Lets the first Submit enqueue, then withholds its reply past the client's deadline."""

    def __init__(self) -> None:
        self.swallowed = 0
        self.cancelled = asyncio.Event()

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = await continuation(details)
        if not details.method.endswith("/Submit") or self.swallowed:
            return handler
        self.swallowed += 1
        inner = handler.unary_unary

        async def withheld(request: Any, context: Any) -> Any:
            reply = await inner(request, context)
            try:
                await asyncio.Event().wait()  # until grpc cancels us at the deadline
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
            return reply

        return grpc.unary_unary_rpc_method_handler(
            withheld,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


async def test_submit_retried_after_timeout_executes_once(redis_url: str, pg_dsn: str) -> None:
    swallow = SwallowFirstSubmitReply()
    engine: Settings = engine_settings(redis_url, pg_dsn)
    gateway = Gateway(engine, GatewaySettings(listen="127.0.0.1:0"), interceptors=[swallow])
    await gateway.start()
    try:
        policy = RetryPolicy(attempts=3, backoff_base_s=0.01)
        async with AsyncClient(gateway.address, timeout=0.5, retry=policy) as client:
            done = await client.submit("noop", "invoice-77")
            assert client.stats.retries == 1  # the first attempt really timed out
        assert swallow.swallowed == 1
        await asyncio.wait_for(swallow.cancelled.wait(), 5)
        assert done.duplicate  # the retry found the first attempt's enqueue
        await run_worker_until_drained(redis_url, pg_dsn)
        assert apps.EXECUTIONS[done.task_id] == 1
    finally:
        await gateway.stop(grace=0)
