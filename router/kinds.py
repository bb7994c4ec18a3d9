"""Gateways refuse task kinds that no worker of the key's home region has registered.

Workers announce their app's kinds into their home's Redis when they start
(`Broker.announce_kinds`: hash `hp:{<home>}:kinds`, replicated with the home's data, so
a promoted mirror knows them too). A gateway keeps each home's set in memory: a kind in
it is accepted without a round trip; a kind not in it makes the gateway read the set
again (one HKEYS) before refusing, so a worker started a moment ago with a new kind is
never refused for a stale cache. Only refusals (and the first submit per home) pay it;
while a home has announced nothing, the set is re-read at most once a second.

Cold start: while no worker of a home has ever announced anything (a fresh region, or a
store started before its workers), every kind is accepted, as before this check existed:
a task of a kind no worker has yet waits in its stream, visible as ENQUEUED. Kinds are
never withdrawn: a kind a past deployment registered stays accepted.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from homeport.core.broker import Broker
from homeport.core.errors import InvalidArgument
from homeport.core.keys import RegionKeys


class KindCheck:
    def __init__(
        self, broker_for: Callable[[str], Awaitable[Broker]], cold_recheck_s: float = 1.0
    ) -> None:
        self._broker_for = broker_for
        self._known: dict[str, set[str]] = {}
        # While a home has announced nothing, every kind is accepted and the set is read
        # again at most every `cold_recheck_s`: no extra round trip per submit.
        self._cold_recheck_s = cold_recheck_s
        self._read_at: dict[str, float] = {}

    async def check(self, kind: str, home: str, field: str) -> None:
        """Raise `InvalidArgument` naming `field` when `home`'s workers announced kinds
        and `kind` is not among them."""
        known = self._known.get(home)
        if known is not None and kind in known:
            return
        now = time.monotonic()
        if known == set() and now - self._read_at[home] < self._cold_recheck_s:
            return  # cold start: nothing announced a moment ago
        broker = await self._broker_for(home)
        known = await broker.known_kinds(RegionKeys(home))
        self._known[home] = known
        self._read_at[home] = now
        if known and kind not in known:
            raise InvalidArgument(
                field,
                kind,
                f"no worker of home region {home} has registered this kind (registered: "
                f"{', '.join(sorted(known))}); register it with @app.task({kind!r}) and "
                "start a worker with it, or fix the name",
            )
