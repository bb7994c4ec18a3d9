"""Connections to the control store (etcd), and the one boundary where its client's
errors become homeport's.

A region's processes talk to their own region's member (through the link `A->A:etcd`),
so a region cut off from the quorum loses etcd as a whole: its leases lapse and its
gateways fence themselves. Clients and the CLI may use any member (`client->A:etcd`).
"""

from __future__ import annotations

import asyncio

import aetcd

from regions.errors import RegionsError
from regions.topology import Topology, split_address


class ControlStoreUnavailable(RegionsError):
    """No etcd member in reach answered; the message lists what was tried."""


def endpoints_for(topology: Topology, src: str) -> list[str]:
    """etcd client endpoints for a process in `src` (a region name or `client`): its own
    region's member first, then the others (clients only)."""
    if src != "client":
        region = topology.region(src)
        return [topology.dial(src, src, "etcd", region.etcd)]
    return [topology.dial("client", r.name, "etcd", r.etcd) for r in topology.regions]


async def connect(endpoints: list[str], timeout: float = 2.0) -> aetcd.Client:
    """The first endpoint that answers a status call within `timeout` seconds."""
    tried: list[str] = []
    for endpoint in endpoints:
        host, port = split_address(endpoint)
        client = aetcd.Client(host=host, port=port, timeout=int(max(timeout, 1)))
        try:
            await asyncio.wait_for(client.status(), timeout)
            return client
        except (aetcd.ClientError, TimeoutError, OSError) as exc:
            tried.append(f"{endpoint} ({type(exc).__name__})")
            await client.close()
    raise ControlStoreUnavailable(f"no etcd member answered: {', '.join(tried)}")
