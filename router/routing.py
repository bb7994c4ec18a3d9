"""Where the SDK sends a key: the client side of routing.

A `RoutingTable` answers "which gateway serves this key's home region now". The SDK asks
it before each call, tells it about every WRONG_REGION redirect it receives, and asks it to
refresh when a gateway is unreachable. The etcd-backed table (routing table plus epochs,
watched) belongs to the multi-region work; `StaticRoutingTable` sends everything to one
gateway and is what a one-region deployment needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Redirect:
    """A gateway's WRONG_REGION answer: `key` is served by `owner_region` at `epoch`,
    whose gateway is `gateway` (host:port; empty when the refusing gateway did not know)."""

    key: str
    owner_region: str
    epoch: int
    gateway: str


@runtime_checkable
class RoutingTable(Protocol):
    def gateway_for(self, key: str) -> str:
        """host:port of the gateway to send `key`'s tasks to."""
        ...

    def any_gateway(self) -> str:
        """A gateway for calls that carry no key (GetTask by id, RegionStatus, ...)."""
        ...

    def learn(self, redirect: Redirect) -> None:
        """Record a redirect so later calls for the key go straight to its owner."""
        ...

    async def refresh(self) -> None:
        """Reload the table from its source (no-op for a static table)."""
        ...


class StaticRoutingTable:
    """Every key goes to one gateway; redirects are remembered per key so a client that
    was sent elsewhere once does not bounce off the first gateway again."""

    def __init__(self, gateway: str) -> None:
        self._gateway = gateway
        self._learned: dict[str, str] = {}

    def gateway_for(self, key: str) -> str:
        return self._learned.get(key, self._gateway)

    def any_gateway(self) -> str:
        return self._gateway

    def learn(self, redirect: Redirect) -> None:
        if redirect.gateway:
            self._learned[redirect.key] = redirect.gateway

    async def refresh(self) -> None:
        return None
