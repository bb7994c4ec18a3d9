"""Arrival processes: Poisson, diurnal, bursty (a Markov-modulated Poisson process) and
replay of a recorded trace.

Each yields absolute arrival times in blocks of increasing numpy arrays, so the model
pays one numpy call per few thousand arrivals instead of one Python call per arrival.
Rates are tasks per second for one region.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Annotated, Literal

import numpy as np
from homeport.simulation.checks import non_negative, positive, probability
from homeport.simulation.errors import EmptyTraceError, ParameterError
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_BLOCK = 8192


def _poisson_block(rng: np.random.Generator, rate: float, start: float, size: int) -> np.ndarray:
    return start + np.cumsum(rng.exponential(1.0 / rate, size))


class PoissonArrivals(BaseModel):
    """Independent arrivals at a constant rate: the M in M/M/c."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["poisson"] = "poisson"
    rate_per_s: float = Field(description="mean arrivals per second")

    @field_validator("rate_per_s")
    @classmethod
    def _check_rate(cls, value: float) -> float:
        return positive("arrivals.rate_per_s", value, "give tasks per second, e.g. 5000")

    @property
    def mean_rate(self) -> float:
        return self.rate_per_s

    @property
    def peak_rate(self) -> float:
        return self.rate_per_s

    def times(self, rng: np.random.Generator, horizon_s: float) -> Iterator[np.ndarray]:
        start = 0.0
        while start < horizon_s:
            block = _poisson_block(rng, self.rate_per_s, start, _BLOCK)
            start = float(block[-1])
            yield block[block < horizon_s]


class DiurnalArrivals(BaseModel):
    """A sinusoidal day: rate(t) = mean * (1 + amplitude * sin(2π t / period + phase)).

    Drawn by thinning a Poisson process at the peak rate, which is exact for any shape.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["diurnal"] = "diurnal"
    mean_rate_per_s: float = Field(description="rate averaged over one period, per second")
    amplitude: float = Field(default=0.5, description="peak is mean*(1+amplitude); 0 = flat, <1")
    period_s: float = Field(default=86_400.0, description="length of one cycle, seconds")
    phase_rad: float = Field(default=0.0, description="phase shift of the sine, radians")

    @field_validator("mean_rate_per_s")
    @classmethod
    def _check_rate(cls, value: float) -> float:
        return positive("arrivals.mean_rate_per_s", value, "give tasks per second")

    @field_validator("amplitude")
    @classmethod
    def _check_amplitude(cls, value: float) -> float:
        return probability("arrivals.amplitude", value, "0 means flat; 0.5 means ±50%")

    @field_validator("period_s")
    @classmethod
    def _check_period(cls, value: float) -> float:
        return positive("arrivals.period_s", value, "86400 is one day")

    @property
    def mean_rate(self) -> float:
        return self.mean_rate_per_s

    @property
    def peak_rate(self) -> float:
        return self.mean_rate_per_s * (1.0 + self.amplitude)

    def rate_at(self, t: np.ndarray) -> np.ndarray:
        angle = 2.0 * math.pi * t / self.period_s + self.phase_rad
        return self.mean_rate_per_s * (1.0 + self.amplitude * np.sin(angle))

    def times(self, rng: np.random.Generator, horizon_s: float) -> Iterator[np.ndarray]:
        start = 0.0
        peak = self.peak_rate
        while start < horizon_s:
            block = _poisson_block(rng, peak, start, _BLOCK)
            start = float(block[-1])
            keep = rng.random(len(block)) * peak < self.rate_at(block)
            block = block[keep]
            yield block[block < horizon_s]


class MmppArrivals(BaseModel):
    """Bursty traffic: a Markov-modulated Poisson process.

    The process stays in state i for an exponential time of mean `mean_sojourn_s[i]`,
    emitting Poisson arrivals at `rates_per_s[i]`, then jumps to another state chosen
    uniformly. Two states (calm, burst) is the usual use.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["mmpp"] = "mmpp"
    rates_per_s: tuple[float, ...] = Field(description="arrival rate in each state, per second")
    mean_sojourn_s: tuple[float, ...] = Field(description="mean time spent in each state, s")

    @model_validator(mode="after")
    def _check_states(self) -> MmppArrivals:
        if len(self.rates_per_s) < 2 or len(self.rates_per_s) != len(self.mean_sojourn_s):
            raise ParameterError(
                "arrivals.rates_per_s",
                self.rates_per_s,
                f"needs two or more states and one sojourn per state "
                f"(got {len(self.mean_sojourn_s)} sojourns)",
                "e.g. rates_per_s: [1000, 8000], mean_sojourn_s: [60, 5]",
            )
        for rate in self.rates_per_s:
            non_negative("arrivals.rates_per_s[]", rate, "rates are tasks per second, >= 0")
        for sojourn in self.mean_sojourn_s:
            positive("arrivals.mean_sojourn_s[]", sojourn, "give each state's mean duration")
        if self.mean_rate <= 0:
            raise ParameterError(
                "arrivals.rates_per_s", self.rates_per_s, "all states are silent", "raise a rate"
            )
        return self

    @property
    def mean_rate(self) -> float:
        # With uniform jumps the embedded chain is uniform, so time shares follow sojourns.
        total = sum(self.mean_sojourn_s)
        return (
            sum(r * s for r, s in zip(self.rates_per_s, self.mean_sojourn_s, strict=True)) / total
        )

    @property
    def peak_rate(self) -> float:
        return max(self.rates_per_s)

    def times(self, rng: np.random.Generator, horizon_s: float) -> Iterator[np.ndarray]:
        states = len(self.rates_per_s)
        state = int(rng.integers(states))
        start = 0.0
        while start < horizon_s:
            end = min(horizon_s, start + rng.exponential(self.mean_sojourn_s[state]))
            rate = self.rates_per_s[state]
            expected = rate * (end - start)
            if rate > 0:
                count = int(rng.poisson(expected))
                block = np.sort(rng.uniform(start, end, count))
                for offset in range(0, count, _BLOCK):
                    yield block[offset : offset + _BLOCK]
            start = end
            state = (state + 1 + int(rng.integers(states - 1))) % states


class TraceArrivals(BaseModel):
    """Replay of recorded arrival times (seconds from the start of the recording)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["trace"] = "trace"
    times_s: tuple[float, ...] = Field(description="arrival times, seconds, any order")

    @field_validator("times_s")
    @classmethod
    def _check_times(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value:
            raise EmptyTraceError(
                "arrivals.times_s",
                value,
                "the trace is empty, so there is nothing to replay",
                "record arrivals first (a load-test export), or use kind: poisson",
            )
        for item in value:
            non_negative("arrivals.times_s[]", item, "times are seconds from the trace start")
        return tuple(sorted(value))

    @property
    def duration_s(self) -> float:
        return self.times_s[-1] if self.times_s[-1] > 0 else 1.0

    @property
    def mean_rate(self) -> float:
        return len(self.times_s) / self.duration_s

    @property
    def peak_rate(self) -> float:
        return self.mean_rate

    def times(self, rng: np.random.Generator, horizon_s: float) -> Iterator[np.ndarray]:
        del rng  # a replay draws nothing; the signature matches the other processes
        values = np.asarray(self.times_s)
        values = values[values < horizon_s]
        for offset in range(0, len(values), _BLOCK):
            yield values[offset : offset + _BLOCK]


Arrivals = Annotated[
    PoissonArrivals | DiurnalArrivals | MmppArrivals | TraceArrivals,
    Field(discriminator="kind"),
]
