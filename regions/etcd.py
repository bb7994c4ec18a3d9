"""Connections to the control store (etcd), and the one boundary where its client's
errors become homeport's.

A region's processes dial every member, their own region's first (through the links
`A->A:etcd`, then `A->B:etcd`): losing the local member costs a reconnect, not the
region's leases. A region cut off from the quorum reaches no member at all, so its
leases lapse and its gateways fence themselves. Clients and the CLI use the links
`client->A:etcd`, in topology order.

Failover between members is gRPC's own: the channel's target lists every endpoint
(`ipv4:h1:p1,h2:p2,...`) and the `pick_first` policy connects to the first that answers,
moving on in order when that connection breaks, as etcd's Go client does with its
endpoint list. aetcd builds its target as `f"{host}:{port}"`, so the list is handed to
it split at the last colon (a thin trick, kept to this module).
"""

from __future__ import annotations

import asyncio
import socket

import aetcd
from homeport.core.security import Identity
from homeport.regions.errors import RegionsError
from homeport.regions.topology import Topology, split_address

# Reconnect quickly after a member or a link comes back (gRPC's default backoff grows to
# two minutes, longer than any lease homeport holds). `min_reconnect_backoff_ms` is also
# gRPC's connect timeout: a paused member's port still accepts TCP but never completes
# the HTTP/2 handshake, and the attempt must give up on it quickly.
#
# Keep-alive: a member that is paused (SIGSTOP) or half-dead keeps its TCP connection
# open and simply stops answering, which no reconnect logic notices. An HTTP/2 PING every
# KEEPALIVE_MS, unanswered for KEEPALIVE_TIMEOUT_MS, closes the connection (grpcio 1.85
# times pings out by `grpc.http2.ping_timeout_ms`, default one minute; the keep-alive
# timeout alone was measured not to fire), and
# `pick_first` moves on to the next member: about one second, inside the 2.5 s a lease
# keeps counting after its last keep-alive (regions/leases.py). etcd refuses clients that
# ping more often than its `--grpc-keepalive-min-time` (default 5 s) with GOAWAY, so the
# members homeport runs set it to 200 ms (regions/servers.py, the Helm chart).
KEEPALIVE_MS = 500
KEEPALIVE_TIMEOUT_MS = 500
CHANNEL_OPTIONS = {
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.min_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 1000,
    "grpc.keepalive_time_ms": KEEPALIVE_MS,
    "grpc.keepalive_timeout_ms": KEEPALIVE_TIMEOUT_MS,
    # Only while a call is open (a lease keep-alive, a read): etcd refuses pings on an
    # idle connection (its enforcement policy does not permit them) with GOAWAY.
    "grpc.keepalive_permit_without_calls": 0,
    "grpc.http2.max_pings_without_data": 0,
    "grpc.http2.ping_timeout_ms": KEEPALIVE_TIMEOUT_MS,
}


class ControlStoreUnavailable(RegionsError):
    """No etcd member in reach answered; the message lists what was tried."""


def endpoints_for(topology: Topology, src: str) -> list[str]:
    """etcd client endpoints for a process in `src` (a region name or `client`), in the
    order to try them: for a region, its own member first."""
    order = sorted(topology.regions, key=lambda r: r.name != src)
    return [topology.dial(src, r.name, "etcd", r.etcd) for r in order]


def channel_target(endpoints: list[str]) -> str:
    """A gRPC target naming every endpoint, for `pick_first` to try in order."""
    resolved = []
    for endpoint in endpoints:
        host, port = split_address(endpoint)
        resolved.append(f"{socket.gethostbyname(host)}:{port}")
    return "ipv4:" + ",".join(resolved)


async def connect(
    endpoints: list[str], timeout: float = 2.0, identity: Identity | None = None
) -> aetcd.Client:
    """A client over every endpoint, once one of them answers a status call within
    `timeout` seconds; as `identity`'s etcd user (default: this process's role)."""
    try:
        target = channel_target(endpoints)
    except OSError as exc:
        raise ControlStoreUnavailable(f"cannot resolve etcd endpoints {endpoints}: {exc}") from exc
    host, port = split_address(target)
    client = aetcd.Client(
        host=host,
        port=port,
        timeout=int(max(timeout, 1)),
        options=CHANNEL_OPTIONS,
        **(identity or Identity.from_env()).etcd_kwargs(),
    )
    try:
        await asyncio.wait_for(client.status(), timeout)
        return client
    except (aetcd.ClientError, TimeoutError, OSError) as exc:
        await client.close()
        raise ControlStoreUnavailable(
            f"no etcd member answered within {timeout:g}s: tried {', '.join(endpoints)}"
            f" ({type(exc).__name__})"
        ) from exc
