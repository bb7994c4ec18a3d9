"""`Gate`: lets handlers run side by side, except a *suspect*, which runs alone.

A suspect is an entry that began before without finishing: the worker running it died,
maybe because of it. Running it alone in its worker means that if it is a poison task,
it kills only itself, so innocent tasks that happened to run next to it are not charged
with another unfinished start, and only the poison reaches `max_deliveries`.
"""

from __future__ import annotations

import asyncio


class Gate:
    """Shared/exclusive admission; entering shared costs no await while no suspect waits.

    Use `await enter(exclusive)` then `leave(exclusive)` in a `finally` (plain methods,
    not a context manager: this is on every task's path).
    """

    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._shared = 0
        self._lock = asyncio.Lock()

    async def enter(self, exclusive: bool) -> None:
        if exclusive:
            await self._lock.acquire()
            self._open.clear()
            try:
                await self._idle.wait()
            except BaseException:
                self._open.set()
                self._lock.release()
                raise
            return
        while not self._open.is_set():
            await self._open.wait()
        self._shared += 1
        self._idle.clear()

    def leave(self, exclusive: bool) -> None:
        if exclusive:
            self._open.set()
            self._lock.release()
            return
        self.leave_shared(1)

    def try_enter_shared(self, n: int) -> bool:
        """Enter shared `n` times at once if no suspect waits or runs (no await), for
        a batch that begins together; False (nothing entered) otherwise."""
        if not self._open.is_set():
            return False
        if n > 0:
            self._shared += n
            self._idle.clear()
        return True

    def leave_shared(self, n: int) -> None:
        """Leave `n` shared entries (of `try_enter_shared`)."""
        if n > 0:
            self._shared -= n
            if self._shared == 0:
                self._idle.set()
