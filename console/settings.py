"""`ConsoleSettings`: one typed settings object for the console process."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from homeport.errors import HomeportError


class ConsoleSettingsError(HomeportError, ValueError):
    """A console setting is invalid; the message names it, its value and the fix."""


@dataclass(frozen=True)
class ConsoleSettings:
    """How the console runs and what it may do.

    - `topology`: the deployment's topology file (the local cluster's by default).
    - `region`: the region the console runs in; its gateway is asked first. Default: the
      topology's first region.
    - `host`, `port`: where the console listens. Default 127.0.0.1 (loopback: the console
      can steer the deployment, so it is not exposed unless the operator says so), 8470.
      Port 0 picks a free port.
    - `token` (`HOMEPORT_TOKEN`): bearer token sent to the gateways for reads and cancels.
      No token and no admin token: the console is read-only.
    - `admin_token` (`HOMEPORT_ADMIN_TOKEN`): turns admin actions on (requeue, promote,
      failback). Each action still asks the person at the browser to type it, so reaching
      the console is not enough to steer the deployment.
    - `reports`: folder of chaos game-day reports. Default `reports`.
    - `refresh_s`: seconds between live refreshes and queue samples. Default 2; > 0.
    - `gateway_timeout_s`: deadline of one gateway call in seconds. Default 3; > 0.
    """

    topology: Path
    region: str | None = None
    host: str = "127.0.0.1"
    port: int = 8470
    token: str | None = None
    admin_token: str | None = None
    reports: Path = Path("reports")
    refresh_s: float = 2.0
    gateway_timeout_s: float = 3.0

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConsoleSettingsError(f"port {self.port}: choose 0 (any free port) to 65535")
        for name in ("refresh_s", "gateway_timeout_s"):
            if getattr(self, name) <= 0:
                raise ConsoleSettingsError(f"{name} {getattr(self, name)}: must be above zero")

    @property
    def read_only(self) -> bool:
        """No token at all: the console shows, and changes nothing."""
        return not self.token and not self.admin_token

    @property
    def admin(self) -> bool:
        return bool(self.admin_token)

    @property
    def read_token(self) -> str | None:
        """The token for reads: an admin token is also valid for every ordinary call."""
        return self.token or self.admin_token


def from_env(topology: Path, **given: object) -> ConsoleSettings:
    """Settings from explicit values, falling back to `HOMEPORT_TOKEN` and
    `HOMEPORT_ADMIN_TOKEN` for the tokens (so they need not appear in `ps`)."""
    values = {k: v for k, v in given.items() if v is not None}
    values.setdefault("token", os.environ.get("HOMEPORT_TOKEN") or None)
    values.setdefault("admin_token", os.environ.get("HOMEPORT_ADMIN_TOKEN") or None)
    return ConsoleSettings(topology=topology, **values)  # type: ignore[arg-type]
