"""`ConsoleSettings`: one typed settings object for the console process."""

from __future__ import annotations

import os
from pathlib import Path

from homeport.core import config
from homeport.core.config import SettingsError
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ConsoleSettings", "SettingsError", "from_env"]


class ConsoleSettings(BaseModel):
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

    model_config = ConfigDict(frozen=True, extra="forbid")

    topology: Path
    region: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8470, ge=0, le=65535)  # 0 = any free port
    token: str | None = None
    admin_token: str | None = None
    reports: Path = Path("reports")
    refresh_s: float = Field(default=2.0, gt=0)
    gateway_timeout_s: float = Field(default=3.0, gt=0)

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
    return config.validate(ConsoleSettings, {"topology": topology, **values}, "HOMEPORT_CONSOLE_")
