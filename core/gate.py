"""`Gate`: lets handlers run side by side, except a *suspect*, which runs alone.

A suspect is an entry that began before without finishing: the worker running it died,
maybe because of it. Running it alone in its worker means that if it is a poison task,
it kills only itself, so innocent tasks that happened to run next to it are not charged
with another unfinished start, and only the poison reaches `max_deliveries`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class Gate:
    """Shared/exclusive admission; shared entry costs no await while no suspect waits."""

    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._shared = 0
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        while not self._open.is_set():
            await self._open.wait()
        self._shared += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._shared -= 1
            if self._shared == 0:
                self._idle.set()

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        async with self._lock:
            self._open.clear()
            try:
                await self._idle.wait()
                yield
            finally:
                self._open.set()
