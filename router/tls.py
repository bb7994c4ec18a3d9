"""TLS and mutual TLS credentials for the gateway and the SDK, from PEM files.

The gateway serves TLS when given a certificate and key, and demands a client certificate
chained to `client_ca` when that is given (mutual TLS). The SDK trusts `ca` (or the
system roots when None) and presents its own certificate when given one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

from homeport.errors import HomeportError


class TlsConfigError(HomeportError, ValueError):
    """A certificate or key file is missing or unreadable; the message names the file."""


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TlsConfigError(f"{what} {path}: cannot read: {exc.strerror}") from exc


def server_credentials(
    cert: Path, key: Path, client_ca: Path | None = None
) -> grpc.ServerCredentials:
    """TLS credentials for the gateway; mutual TLS when `client_ca` is given."""
    pair = (_read(key, "TLS key"), _read(cert, "TLS certificate"))
    root = _read(client_ca, "client CA") if client_ca is not None else None
    return grpc.ssl_server_credentials(
        [pair], root_certificates=root, require_client_auth=root is not None
    )


@dataclass(frozen=True)
class ClientTls:
    """How the SDK dials a TLS gateway.

    `ca`: PEM bundle to trust (None: the system roots). `cert`/`key`: the client's own
    certificate for mutual TLS. `server_name`: the name to verify when dialling by IP
    (e.g. the certificate says `gateway.us-east` but the address is 127.0.0.1).
    """

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    server_name: str | None = None

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise TlsConfigError("client TLS: cert and key go together: give both or neither")

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca, "TLS CA") if self.ca else None,
            private_key=_read(self.key, "TLS client key") if self.key else None,
            certificate_chain=_read(self.cert, "TLS client certificate") if self.cert else None,
        )

    def channel_options(self) -> list[tuple[str, str]]:
        if self.server_name is None:
            return []
        return [("grpc.ssl_target_name_override", self.server_name)]
