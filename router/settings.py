"""The gateway's own settings: the front-door half of a gateway process's configuration.

The engine half (region, partitions, Redis, PostgreSQL, dedup window, WAIT timeout, limits,
admin port) is `core.settings.Settings`, read from `HOMEPORT_*`; this object holds only
what the gateway adds, from `HOMEPORT_GATEWAY_*`. Sources, later ones winning: defaults,
a YAML file (`--gateway-config`), environment variables (lists comma-separated, e.g.
`HOMEPORT_GATEWAY_TOKENS=a,b`), then command-line options.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from homeport.core import config as core_config
from homeport.core.config import SettingsError
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["ENV_PREFIX", "GatewaySettings", "SettingsError", "load_settings"]

ENV_PREFIX = "HOMEPORT_GATEWAY_"
MAX_BATCH = 10_000


class GatewaySettings(BaseModel):
    """Everything one gateway process needs to serve.

    Each field's unit and default is stated beside it; "zero" is given where it means
    something other than the number.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # host:port the gRPC server binds; port 0 picks a free port (printed at start).
    listen: str = "127.0.0.1:50051"
    # host:port clients should dial; named in WRONG_REGION/FENCED details. Default: listen.
    advertise: str | None = None
    # Epoch the served partitions are written with while no routing table exists (static
    # serving). 0 is the epoch of a partition nobody has promoted; a promotion fences it.
    epoch: int = Field(default=0, ge=0)
    # Bearer tokens accepted on every RPC; empty means authentication is off.
    tokens: tuple[str, ...] = ()
    # Bearer tokens also allowed to call admin RPCs; empty means admin RPCs are refused
    # whenever `tokens` is set, and open when it is not.
    admin_tokens: tuple[str, ...] = ()
    # PEM server certificate chain and key; both or neither. None means plaintext.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # PEM CA bundle that client certificates must chain to; set means mutual TLS.
    tls_client_ca: Path | None = None
    # Largest request or response message, bytes. A full batch of small tasks fits.
    max_message_bytes: int = Field(default=32 * 1024 * 1024, ge=64 * 1024)
    # Tasks per SubmitBatch request (hard cap 10,000).
    max_batch: int = Field(default=MAX_BATCH, ge=1, le=MAX_BATCH)
    # Concurrent RPCs before new ones get RESOURCE_EXHAUSTED; 0 means unbounded.
    max_concurrent_rpcs: int = Field(default=0, ge=0)
    # Seconds in-flight RPCs get to finish at shutdown before they are cancelled.
    grace_seconds: float = Field(default=5.0, ge=0)
    # Seconds between record-store polls of WatchTask.
    watch_poll_seconds: float = Field(default=0.05, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> GatewaySettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: set both or neither")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("tls_client_ca (mutual TLS) needs tls_cert and tls_key")
        if self.admin_tokens and not self.tokens:
            raise ValueError("admin_tokens without tokens: list admin tokens in tokens too")
        return self

    @property
    def auth_enabled(self) -> bool:
        return bool(self.tokens)


def load_settings(
    config: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> GatewaySettings:
    """Merge file, environment and `overrides` (None values skipped) into settings
    (`core.config`, the one loader)."""
    return core_config.load(GatewaySettings, ENV_PREFIX, config, env, overrides)
