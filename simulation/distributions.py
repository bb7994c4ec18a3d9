"""Service-time distributions: exponential, lognormal, and empirical (from measurements).

Each knows its mean and squared coefficient of variation, which the analytic side of the
planner uses for its first guess, and draws samples in vectorised blocks from an injected
`numpy.random.Generator`, because drawing one Python float at a time dominated the cost
of a million-task run.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
from homeport.simulation.checks import non_negative, positive
from homeport.simulation.errors import EmptyTraceError
from pydantic import BaseModel, ConfigDict, Field, field_validator


class ExponentialService(BaseModel):
    """Memoryless service times: the M in M/M/c, used to validate against closed forms."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["exponential"] = "exponential"
    mean_s: float = Field(description="mean service time, seconds")

    @field_validator("mean_s")
    @classmethod
    def _check_mean(cls, value: float) -> float:
        return positive("service_time.mean_s", value, "give the mean in seconds, e.g. 0.005")

    @property
    def mean(self) -> float:
        return self.mean_s

    @property
    def scv(self) -> float:
        return 1.0

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.exponential(self.mean_s, size)


class LognormalService(BaseModel):
    """Right-skewed service times, the usual shape of measured handler latencies."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["lognormal"] = "lognormal"
    median_s: float = Field(description="median service time, seconds")
    sigma: float = Field(description="standard deviation of log(service time); 0 = constant")

    @field_validator("median_s")
    @classmethod
    def _check_median(cls, value: float) -> float:
        return positive("service_time.median_s", value, "give the median in seconds")

    @field_validator("sigma")
    @classmethod
    def _check_sigma(cls, value: float) -> float:
        return non_negative("service_time.sigma", value, "use 0 for constant, ~0.5 typical")

    @property
    def mean(self) -> float:
        return self.median_s * math.exp(self.sigma**2 / 2.0)

    @property
    def scv(self) -> float:
        return math.exp(self.sigma**2) - 1.0

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.lognormal(math.log(self.median_s), self.sigma, size)


class EmpiricalService(BaseModel):
    """Service times resampled from measurements (or quantile points fitted from them).

    Sampling interpolates linearly between sorted points, so a 200-point summary of a
    million measurements reproduces their shape without shipping the raw data.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["empirical"] = "empirical"
    samples_s: tuple[float, ...] = Field(description="measured service times, seconds")

    @field_validator("samples_s")
    @classmethod
    def _check_samples(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value:
            raise EmptyTraceError(
                "service_time.samples_s",
                value,
                "an empirical distribution needs at least one measurement",
                "add measured service times, or use kind: exponential with mean_s",
            )
        for item in value:
            non_negative("service_time.samples_s[]", item, "service times cannot be negative")
        if max(value) <= 0:
            raise EmptyTraceError(
                "service_time.samples_s", value, "all samples are zero", "add real measurements"
            )
        return tuple(sorted(value))

    @property
    def mean(self) -> float:
        return float(np.mean(self.samples_s))

    @property
    def scv(self) -> float:
        values = np.asarray(self.samples_s)
        return float(np.var(values) / np.mean(values) ** 2)

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        points = np.asarray(self.samples_s)
        if len(points) == 1:
            return np.full(size, points[0])
        positions = rng.random(size) * (len(points) - 1)
        return np.asarray(np.interp(positions, np.arange(len(points)), points), dtype=float)


ServiceTime = Annotated[
    ExponentialService | LognormalService | EmpiricalService, Field(discriminator="kind")
]


class BlockSampler:
    """Hands out one draw at a time from blocks drawn in bulk (the hot path's source)."""

    def __init__(
        self,
        dist: ExponentialService | LognormalService | EmpiricalService,
        rng: np.random.Generator,
        block: int = 8192,
    ) -> None:
        self._dist = dist
        self._rng = rng
        self._block = block
        self._values: list[float] = []
        self._index = 0

    def next(self) -> float:
        if self._index >= len(self._values):
            self._values = self._dist.sample(self._rng, self._block).tolist()
            self._index = 0
        value = self._values[self._index]
        self._index += 1
        return value
