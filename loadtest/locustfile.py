"""The Locust file: `locust -f loadtest/locustfile.py --host 127.0.0.1:50051 ...`.

Order matters: importing Locust monkey-patches the process with gevent, and only then
may grpc be told to use gevent (`init_gevent`); the sync stub in `loadtest.users` then
yields to other greenlets while a call is on the wire.

The load shape comes from `HOMEPORT_LOADTEST_PROFILE` (steady, step, spike, diurnal;
`none` = plain `-u/-r/-t`), `_USERS`, `_DURATION_S` and `_SPAWN_RATE`, set by
`homeport loadtest run`. In a distributed run only the master uses the shape.
"""

from __future__ import annotations

import os

import grpc.experimental.gevent as grpc_gevent
import locust  # noqa: I001  (first: gevent's monkey-patching must precede grpc's set-up)

grpc_gevent.init_gevent()

from homeport.loadtest import shapes  # noqa: E402
from homeport.loadtest.users import SchedulerUser  # noqa: E402

__all__ = ["SchedulerUser"]

_PROFILE = os.environ.get("HOMEPORT_LOADTEST_PROFILE", "none")

if _PROFILE != "none":

    class ProfileShape(locust.LoadTestShape):
        """The profile named in the environment, as a Locust load shape."""

        def __init__(self) -> None:
            super().__init__()
            self.shape = shapes.make_shape(
                _PROFILE,
                int(os.environ.get("HOMEPORT_LOADTEST_USERS", "10")),
                float(os.environ.get("HOMEPORT_LOADTEST_DURATION_S", "60")),
                float(os.environ.get("HOMEPORT_LOADTEST_SPAWN_RATE", "10")),
            )

        def tick(self) -> tuple[int, float] | None:
            return self.shape.at(self.get_run_time())
