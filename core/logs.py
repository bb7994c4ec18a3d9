"""Logging of homeport's server processes (worker, manager, gateway, agent).

One format everywhere, with a timestamp, the level and the logger, so that the logs of a
game day's many processes can be merged and read by time. The level comes from
`HOMEPORT_LOG_LEVEL` (default INFO): retries, dead letters, fencing and lease changes
are logged at INFO, failures at WARNING.
"""

from __future__ import annotations

import logging
import os

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure() -> None:
    """Set up the root logger of a server process (idempotent)."""
    level = os.environ.get("HOMEPORT_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(level=level, format=FORMAT)
