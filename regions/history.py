"""The failover history: one append-only etcd record per promotion or failback switch.

The routing table keeps only the latest route of each home, so "when did us-east fail
over, why, and how long did it take" was lost at the next change. Each finished
promotion or switch back writes

    <prefix>/history/<home>/<epoch, 12 digits>/<kind>   JSON of a `FailoverEvent`

The epoch makes the key unique (it only grows, and each promotion or switch bumps it),
zero-padding keeps a home's records in epoch order, and nothing ever rewrites one. The
web console's Failovers page reads them; `homeport region status` still reads routes.

Writing history is best effort: the route change it describes has already happened and
must be reported as done, so a failed write is logged and counted, never raised.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import aetcd

log = logging.getLogger(__name__)

Kind = Literal["promote", "failback"]


@dataclass(frozen=True)
class FailoverEvent:
    """One route change of `home`: served by `to` at `epoch` (from `from_region` at
    `old_epoch`), started at `at` (unix seconds) and done in `seconds`."""

    kind: Kind
    home: str
    from_region: str
    to: str
    old_epoch: int
    epoch: int
    at: float
    seconds: float
    reason: str
    orphans: int = 0
    steps: list[str] = field(default_factory=list)
    # The capacity check before a promotion (`regions.capacity.CapacityDecision`), or
    # None: no check ran (a manual promotion, a failback, or the check is off).
    capacity: dict[str, Any] | None = None

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def decode(cls, raw: bytes) -> FailoverEvent:
        return cls(**json.loads(raw))


def _prefix(etcd_prefix: str) -> str:
    return etcd_prefix.rstrip("/") + "/history/"


def event_key(etcd_prefix: str, event: FailoverEvent) -> bytes:
    return f"{_prefix(etcd_prefix)}{event.home}/{event.epoch:012d}/{event.kind}".encode()


async def record(client: aetcd.Client, etcd_prefix: str, event: FailoverEvent) -> bool:
    """Append `event`; False (logged) when etcd refused it."""
    try:
        await client.put(event_key(etcd_prefix, event), event.encode())
    except Exception as exc:  # noqa: BLE001 - the route already changed; see module doc
        log.warning("failover history of %s epoch %d not written: %s", event.home, event.epoch, exc)
        return False
    return True


async def events(client: aetcd.Client, etcd_prefix: str) -> list[FailoverEvent]:
    """Every recorded event, newest first. Unreadable records are skipped, not fatal: an
    operator looking at history should see the rest."""
    found = []
    for kv in await client.get_prefix(_prefix(etcd_prefix).encode()):
        try:
            found.append(FailoverEvent.decode(kv.value))
        except (ValueError, TypeError) as exc:
            log.warning("skipping unreadable failover record %r: %s", kv.key, exc)
    return sorted(found, key=lambda e: (e.at, e.epoch), reverse=True)
