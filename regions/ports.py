"""Free loopback ports for the local cluster.

Ports come from 20000-32767: below Linux's ephemeral range (32768+), so an outgoing
connection's source port can never take a port a proxy or server is about to bind (a
collision ENVIRONMENT.md saw with Toxiproxy), and above the usual well-known services.
"""

from __future__ import annotations

import random
import socket

LOW, HIGH = 20000, 32767


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class PortPicker:
    """Hands out distinct free ports. Each is checked by binding it at the moment it is
    picked; a port taken between the pick and the server's own bind shows up as that
    server failing to start, which the launcher reports by name."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()
        self._given: set[int] = set()

    def take(self, bus_offset: int = 0) -> int:
        """A free port; with `bus_offset`, one whose `port + bus_offset` is free too (a Redis
        Cluster node also listens on its cluster-bus port, port + 10000)."""
        for _ in range(2000):
            port = self._rng.randint(LOW, HIGH - bus_offset)
            ports = {port, port + bus_offset}
            if ports & self._given or not all(_is_free(p) for p in ports):
                continue
            self._given |= ports
            return port
        raise RuntimeError(f"no free loopback port found in {LOW}-{HIGH}")
