"""Load shapes: how many Locust users run at each moment of a test.

Each shape follows Locust's `LoadTestShape` contract: `tick()` returns
`(users, spawn_rate)` for the current run time, or `None` to end the test. They do not
subclass it: importing Locust monkey-patches the process with gevent, which must not
happen in the CLI or the (asyncio) test process. `loadtest/locustfile.py` wraps the chosen
shape in a real `LoadTestShape`. The clock is injected so a test can walk a shape through
time without sleeping.

- **steady**: `users` from the start until `duration_s`.
- **step**: `steps` equal stairs up to `users`, each `duration_s / steps` long.
- **spike**: a quarter of `users`, then all of them (spawned at once) for the middle
  fifth of the run, then a quarter again: does the system recover after a burst?
- **diurnal**: a compressed day: from a tenth of `users` up to `users` and back along a
  cosine, one period per `duration_s`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from homeport.loadtest.errors import WorkloadError

Tick = tuple[int, float] | None
PROFILES = ("steady", "step", "spike", "diurnal")


class Shape:
    """Base of the shapes: run time from an injectable clock, as `LoadTestShape` has."""

    name = "shape"

    def __init__(self, duration_s: float, clock: Callable[[], float] = time.perf_counter):
        if duration_s <= 0:
            raise WorkloadError("duration_s", duration_s, "must be > 0 seconds")
        self.duration_s = duration_s
        self.clock = clock
        self.start_time = clock()

    def reset_time(self) -> None:
        self.start_time = self.clock()

    def get_run_time(self) -> float:
        return self.clock() - self.start_time

    def at(self, run_time: float) -> Tick:
        raise NotImplementedError

    def tick(self) -> Tick:
        return self.at(self.get_run_time())


def _check_users(users: int, spawn_rate: float) -> None:
    if users < 1:
        raise WorkloadError("users", users, "must be >= 1")
    if spawn_rate <= 0:
        raise WorkloadError("spawn_rate", spawn_rate, "must be > 0 users per second")


class SteadyShape(Shape):
    """A constant number of users for the whole run."""

    name = "steady"

    def __init__(
        self,
        users: int,
        duration_s: float,
        spawn_rate: float = 10.0,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        super().__init__(duration_s, clock)
        _check_users(users, spawn_rate)
        self.users, self.spawn_rate = users, spawn_rate

    def at(self, run_time: float) -> Tick:
        if run_time >= self.duration_s:
            return None
        return self.users, self.spawn_rate


class StepShape(Shape):
    """Equal stairs up to `users`: finds the load at which latency starts to bend."""

    name = "step"

    def __init__(
        self,
        users: int,
        duration_s: float,
        steps: int = 4,
        spawn_rate: float = 10.0,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        super().__init__(duration_s, clock)
        _check_users(users, spawn_rate)
        if not 1 <= steps <= users:
            raise WorkloadError("steps", steps, f"must be 1..users ({users})")
        self.users, self.steps, self.spawn_rate = users, steps, spawn_rate

    def at(self, run_time: float) -> Tick:
        if run_time >= self.duration_s:
            return None
        step = min(self.steps, int(run_time / (self.duration_s / self.steps)) + 1)
        return math.ceil(self.users * step / self.steps), self.spawn_rate


class SpikeShape(Shape):
    """A quarter of the users, all of them for the middle fifth, a quarter again."""

    name = "spike"

    def __init__(
        self,
        users: int,
        duration_s: float,
        spawn_rate: float = 10.0,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        super().__init__(duration_s, clock)
        _check_users(users, spawn_rate)
        self.users, self.spawn_rate = users, spawn_rate
        self.base = max(1, users // 4)
        self.spike_from, self.spike_to = 0.4 * duration_s, 0.6 * duration_s

    def at(self, run_time: float) -> Tick:
        if run_time >= self.duration_s:
            return None
        if self.spike_from <= run_time < self.spike_to:
            return self.users, float(self.users)  # all at once: that is the spike
        return self.base, self.spawn_rate


class DiurnalShape(Shape):
    """One compressed day: a cosine from a tenth of the users to all and back."""

    name = "diurnal"

    def __init__(
        self,
        users: int,
        duration_s: float,
        spawn_rate: float = 10.0,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        super().__init__(duration_s, clock)
        _check_users(users, spawn_rate)
        self.users, self.spawn_rate = users, spawn_rate
        self.low = max(1, users // 10)

    def at(self, run_time: float) -> Tick:
        if run_time >= self.duration_s:
            return None
        phase = (1 - math.cos(2 * math.pi * run_time / self.duration_s)) / 2
        return self.low + round((self.users - self.low) * phase), self.spawn_rate


def make_shape(
    profile: str,
    users: int,
    duration_s: float,
    spawn_rate: float = 10.0,
    clock: Callable[[], float] = time.perf_counter,
) -> Shape:
    """The named profile's shape (see the module docstring)."""
    if profile == "steady":
        return SteadyShape(users, duration_s, spawn_rate, clock)
    if profile == "step":
        return StepShape(users, duration_s, min(4, users), spawn_rate, clock)
    if profile == "spike":
        return SpikeShape(users, duration_s, spawn_rate, clock)
    if profile == "diurnal":
        return DiurnalShape(users, duration_s, spawn_rate, clock)
    raise WorkloadError("profile", profile, f"must be one of {', '.join(PROFILES)}")
