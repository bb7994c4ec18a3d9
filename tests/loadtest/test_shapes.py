"""Each load shape's tick() sequence, walked through time with an injected clock."""

from __future__ import annotations

import pytest
from homeport.loadtest.errors import WorkloadError
from homeport.loadtest.shapes import PROFILES, Shape, make_shape


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ticks(shape: Shape, clock: FakeClock, times: list[float]) -> list[tuple[int, float] | None]:
    out = []
    for t in times:
        clock.now = 1000.0 + t
        out.append(shape.tick())
    return out


def test_steady_holds_users_then_ends() -> None:
    clock = FakeClock()
    shape = make_shape("steady", 20, 60, spawn_rate=5, clock=clock)
    assert ticks(shape, clock, [0, 1, 30, 59.9, 60, 61]) == [
        (20, 5),
        (20, 5),
        (20, 5),
        (20, 5),
        None,
        None,
    ]


def test_step_climbs_equal_stairs() -> None:
    clock = FakeClock()
    shape = make_shape("step", 20, 40, spawn_rate=5, clock=clock)
    assert ticks(shape, clock, [0, 9.9, 10, 19.9, 20, 30, 39.9, 40]) == [
        (5, 5),
        (5, 5),
        (10, 5),
        (10, 5),
        (15, 5),
        (20, 5),
        (20, 5),
        None,
    ]


def test_step_with_fewer_users_than_four_steps() -> None:
    clock = FakeClock()
    shape = make_shape("step", 2, 10, clock=clock)
    assert ticks(shape, clock, [0, 4.9, 5, 10]) == [(1, 10), (1, 10), (2, 10), None]


def test_spike_spawns_all_users_at_once_in_the_middle_fifth() -> None:
    clock = FakeClock()
    shape = make_shape("spike", 40, 100, spawn_rate=5, clock=clock)
    assert ticks(shape, clock, [0, 39.9, 40, 59.9, 60, 99, 100]) == [
        (10, 5),
        (10, 5),
        (40, 40.0),
        (40, 40.0),
        (10, 5),
        (10, 5),
        None,
    ]


def test_diurnal_rises_to_peak_at_half_period_and_falls_back() -> None:
    clock = FakeClock()
    shape = make_shape("diurnal", 100, 80, spawn_rate=5, clock=clock)
    got = ticks(shape, clock, [0, 10, 20, 30, 40, 50, 60, 70, 79.9, 80])
    users = [t[0] for t in got if t is not None]
    assert users == [10, 23, 55, 87, 100, 87, 55, 23, 10]
    assert got[-1] is None


def test_reset_time_restarts_the_shape() -> None:
    clock = FakeClock()
    shape = make_shape("steady", 3, 10, clock=clock)
    clock.now += 11
    assert shape.tick() is None
    shape.reset_time()
    assert shape.tick() == (3, 10)


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_ends_at_its_duration(profile: str) -> None:
    clock = FakeClock()
    shape = make_shape(profile, 8, 30, clock=clock)
    seq = ticks(shape, clock, [i * 0.5 for i in range(0, 62)])
    assert all(t is not None and 1 <= t[0] <= 8 for t in seq[:60])
    assert seq[60:] == [None, None]


@pytest.mark.parametrize(
    ("profile", "users", "duration"),
    [("steady", 0, 10), ("steady", 5, 0), ("surge", 5, 10)],
)
def test_bad_shape_settings_are_refused(profile: str, users: int, duration: float) -> None:
    with pytest.raises(WorkloadError):
        make_shape(profile, users, duration)


def test_an_unknown_task_kind_is_refused_naming_the_handlers() -> None:
    from homeport.loadtest.workload import KINDS, Workload

    assert {"noop", "sleep", "work"} <= set(KINDS)
    with pytest.raises(WorkloadError, match="kind='wrk'.*'work'"):
        Workload(kind="wrk")


async def test_the_work_handler_sleeps_about_its_mean(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio
    import time

    import homeport.loadtest.apps as apps
    from homeport.core.app import TaskContext

    handler = apps.app.handler("work")
    assert handler is not None
    monkeypatch.setattr(apps, "WORK_MEAN_S", 0.002)
    ctx = TaskContext("t", "k", "work", b"", 1, 1, "us-east", 0, asyncio.Event())
    start = time.monotonic()
    for _ in range(200):
        await handler.fn(ctx)
    mean = (time.monotonic() - start) / 200
    # An exponential of mean 2 ms (standard error of 200 samples: 0.14 ms); a busy
    # machine only makes sleeps longer, so only the lower bound is judged.
    assert mean > 0.0015, mean
