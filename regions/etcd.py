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

TLS: aetcd 1.0's `Client.connect` opens a plaintext channel only, so `TlsClient` is a
thin subclass whose `connect` opens a TLS channel and then does what aetcd's does (token
login, stubs, watcher). One channel spans every member, so one name is checked for all
of them (`TlsFiles.etcd_server_name`, default the first endpoint's host): members'
certificates must carry it, as the dev CA's one certificate for 127.0.0.1 does.
"""

from __future__ import annotations

import asyncio
import socket

import aetcd
import grpc
from aetcd import rpc, watcher
from aetcd.client import _handle_errors
from homeport.core.security import Identity, TlsFiles
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


def tls_channel(
    target: str, tls: TlsFiles, server_name: str, options: dict[str, object] | None = None
) -> grpc.aio.Channel:
    """A TLS channel to etcd: members verified against `tls.ca` under `server_name`,
    this process's certificate presented (members run `--client-cert-auth`)."""
    credentials = grpc.ssl_channel_credentials(
        tls.ca.read_bytes(), tls.key.read_bytes(), tls.cert.read_bytes()
    )
    opts = {**(options or {}), "grpc.default_authority": server_name}
    return grpc.aio.secure_channel(target, credentials, options=list(opts.items()))


class TlsClient(aetcd.Client):  # type: ignore[misc]  # aetcd is untyped
    """An aetcd client over a TLS channel (aetcd 1.0 opens plaintext ones only). The
    body of `connect` after the channel is aetcd's own: log in for a token, make the
    stubs and the watcher."""

    def __init__(self, tls: TlsFiles, server_name: str, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._tls = tls
        self._server_name = server_name

    @_handle_errors  # type: ignore[untyped-decorator]  # aetcd's translation into aetcd.ClientError
    async def connect(self) -> None:
        if self._connected.is_set():
            return
        if self._is_connecting:  # type: ignore[has-type]  # another task is connecting: wait for it, as aetcd does
            await asyncio.wait_for(self._connected.wait(), self._connect_wait_timeout)
            return
        try:
            self._is_connecting = True
            target = f"{self._host}:{self._port}"
            self.channel = tls_channel(target, self._tls, self._server_name, self._options)
            if self._username is not None and self._password is not None:
                self.auth_stub = rpc.AuthStub(self.channel)
                request = rpc.AuthenticateRequest(name=self._username, password=self._password)
                reply = await self.auth_stub.Authenticate(request, timeout=self._timeout)
                self.metadata = (("token", reply.token),)
            self.kvstub = rpc.KVStub(self.channel)
            self.clusterstub = rpc.ClusterStub(self.channel)
            self.leasestub = rpc.LeaseStub(self.channel)
            self.maintenancestub = rpc.MaintenanceStub(self.channel)
            self._watcher = watcher.Watcher(
                rpc.WatchStub(self.channel), timeout=self._timeout, metadata=self.metadata
            )
            self._connected.set()
        finally:
            self._is_connecting = False


def make_client(
    endpoints: list[str], identity: Identity, timeout: float = 2.0, **kwargs: object
) -> aetcd.Client:
    """A client (not yet connected) over every endpoint, as `identity`'s etcd user, over
    TLS when the identity's topology says etcd's client port speaks it."""
    try:
        target = channel_target(endpoints)
    except OSError as exc:
        raise ControlStoreUnavailable(f"cannot resolve etcd endpoints {endpoints}: {exc}") from exc
    host, port = split_address(target)
    args = {
        "host": host,
        "port": port,
        "timeout": int(max(timeout, 1)),
        "options": CHANNEL_OPTIONS,
        **identity.etcd_kwargs(),
        **kwargs,
    }
    tls = identity.etcd_tls()
    if tls is None:
        return aetcd.Client(**args)
    name = tls.etcd_server_name or split_address(endpoints[0])[0]
    return TlsClient(tls, name, **args)


async def connect(
    endpoints: list[str], timeout: float = 2.0, identity: Identity | None = None
) -> aetcd.Client:
    """A client over every endpoint, once one of them answers a status call within
    `timeout` seconds; as `identity`'s etcd user (default: this process's role)."""
    client = make_client(endpoints, identity or Identity.from_env(), timeout)
    try:
        await asyncio.wait_for(client.status(), timeout)
        return client
    except (aetcd.ClientError, TimeoutError, OSError) as exc:
        await client.close()
        raise ControlStoreUnavailable(
            f"no etcd member answered within {timeout:g}s: tried {', '.join(endpoints)}"
            f" ({type(exc).__name__})"
        ) from exc
