"""The server processes' loop exception handler (core/logs.py): uvloop's report of a
write to a TLS connection a timeout already closed (uvloop#506) becomes one WARNING line;
every other loop error keeps asyncio's default ERROR report."""

from __future__ import annotations

import asyncio
import logging

import pytest
import uvloop
from homeport.core import logs


def _report(context: dict[str, object]) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(logs._loop_errors)
        loop.call_exception_handler(context)

    uvloop.run(main())


def test_a_closed_tls_transport_is_one_warning_line(caplog: pytest.LogCaptureFixture) -> None:
    exc = RuntimeError(
        "unable to perform operation on <TCPTransport closed=True>; the handler is closed"
    )
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        _report({"message": "Fatal error on SSL protocol", "exception": exc})
    assert [(r.levelno, r.exc_info) for r in caplog.records] == [(logging.WARNING, None)]
    assert "uvloop#506" in caplog.records[0].getMessage()


def test_other_loop_errors_keep_the_default_report(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        _report({"message": "Task exception was never retrieved", "exception": ValueError("x")})
    assert [r.levelno for r in caplog.records] == [logging.ERROR]
    assert caplog.records[0].exc_info is not None
