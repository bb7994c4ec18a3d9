"""Logging of homeport's server processes (worker, manager, gateway, agent).

One format everywhere, with a timestamp, the level and the logger, so that the logs of a
game day's many processes can be merged and read by time. The level comes from
`HOMEPORT_LOG_LEVEL` (default INFO): retries, dead letters, fencing and lease changes
are logged at INFO, failures at WARNING.

`run_server` runs a server's main coroutine on uvloop with one exception handler
added: uvloop reports a TLS connection that a timeout closed in mid-write as "Fatal
error on SSL protocol" with a traceback (MagicStack/uvloop#506, open), although the
client library has already seen and handled the timeout. That case is logged as one
WARNING line; every other loop error keeps the default report.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Coroutine
from typing import Any

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure() -> None:
    """Set up the root logger of a server process (idempotent)."""
    level = os.environ.get("HOMEPORT_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(level=level, format=FORMAT)


def _loop_errors(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    exc = context.get("exception")
    closed = isinstance(exc, RuntimeError) and "the handler is closed" in str(exc)
    if closed and "SSL" in str(context.get("message", "")):
        logging.getLogger("asyncio").warning(
            "a TLS connection closed by a timeout was written to (uvloop#506): ignored"
        )
        return
    loop.default_exception_handler(context)


def run_server(main: Coroutine[Any, Any, Any], use_uvloop: bool = True) -> Any:
    """Configure logging, then run `main` (on uvloop unless told otherwise) with the
    loop's exception handler of this module."""
    configure()

    async def with_handler() -> Any:
        asyncio.get_running_loop().set_exception_handler(_loop_errors)
        return await main

    if use_uvloop:
        import uvloop

        return uvloop.run(with_handler())
    return asyncio.run(with_handler())
