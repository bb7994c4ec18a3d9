"""The parameter file of a simulation run: the model's whole input, as a person edits it.

Loaded from YAML (or a mapping) at the edge and validated there, so a mistake is reported
with the field, the value and the fix before a single event is simulated.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from homeport.simulation.arrivals import Arrivals, TraceArrivals
from homeport.simulation.checks import at_least, non_negative, positive, probability
from homeport.simulation.distributions import ExponentialService, ServiceTime
from homeport.simulation.errors import ParameterError, UnstableLoadError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_AUTO_TASKS = 200_000
"""Run length when a stable model gives neither `duration_s` nor `max_tasks`."""


class KeySpace(BaseModel):
    """How a region's traffic spreads over partition keys.

    Per-key order makes a key a single-server queue of its own, so skew matters: a key
    carrying a share h of the traffic needs h * rate * mean_service < 1, however many
    workers there are.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    count: int = Field(default=100_000, description="distinct keys per region")
    zipf_s: float = Field(default=0.0, description="Zipf exponent of key popularity; 0 = uniform")
    hot_key_share: float = Field(
        default=0.0, description="extra share of traffic on key 0; 0 = none"
    )
    name_format: str = Field(
        default="lt-{rank}",
        description="the name of key number k (rank = k + 1) as the partitioner hashes it; "
        "the load test's names by default",
    )

    @field_validator("count")
    @classmethod
    def _check_count(cls, value: int) -> int:
        return at_least("keys.count", value, 1, "give the number of distinct keys per region")

    @field_validator("zipf_s")
    @classmethod
    def _check_zipf(cls, value: float) -> float:
        return non_negative("keys.zipf_s", value, "0 is uniform, ~1 is heavily skewed")

    @field_validator("hot_key_share")
    @classmethod
    def _check_hot(cls, value: float) -> float:
        return probability("keys.hot_key_share", value, "a fraction of traffic, e.g. 0.05")


class RetryPolicy(BaseModel):
    """Failed attempts are retried after capped exponential backoff with jitter.

    The key stays held during backoff (design §3.3: the next task of a key waits until the
    previous one finished or went to the dead-letter stream).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    failure_probability: float = Field(
        default=0.0, description="chance an attempt fails; 0 = never"
    )
    max_attempts: int = Field(default=5, description="attempts before dead-lettering, >= 1")
    backoff_base_s: float = Field(
        default=0.1, description="backoff before the 2nd attempt, seconds"
    )
    backoff_cap_s: float = Field(default=30.0, description="largest backoff, seconds")

    @field_validator("failure_probability")
    @classmethod
    def _check_p(cls, value: float) -> float:
        return probability("retries.failure_probability", value, "e.g. 0.01 for 1%")

    @field_validator("max_attempts")
    @classmethod
    def _check_attempts(cls, value: int) -> int:
        return at_least("retries.max_attempts", value, 1, "1 means never retry")

    @field_validator("backoff_base_s", "backoff_cap_s")
    @classmethod
    def _check_backoff(cls, value: float) -> float:
        return non_negative("retries.backoff_s", value, "give seconds, 0 for immediate")

    @property
    def attempts_per_task(self) -> float:
        """Expected attempts per task, which multiplies the work a task brings."""
        p = self.failure_probability
        return (1.0 - p**self.max_attempts) / (1.0 - p)


class RegionSpec(BaseModel):
    """One region: its own traffic, its workers, and the region that stands by for it.

    A worker consumes only the partitions assigned to it (round-robin, as the region
    manager balances them, unless `owners` gives the split a load test measured), so
    workers beyond the partition count sit idle.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    arrivals: Arrivals
    workers: int = Field(description="worker processes in the region")
    concurrency: int = Field(default=1, description="tasks one worker runs at once")
    partitions: int = Field(default=64, description="partitions homed in the region")
    standby: str | None = Field(default=None, description="region promoted when this one fails")
    owners: tuple[int, ...] | None = Field(
        default=None,
        description="per partition, the worker (0-based) owning it; none = round-robin",
    )

    @model_validator(mode="after")
    def _check_owners(self) -> RegionSpec:
        if self.owners is not None and (
            len(self.owners) != self.partitions
            or not all(0 <= w < self.workers for w in self.owners)
        ):
            raise ParameterError(
                f"regions[{self.name}].owners",
                list(self.owners),
                f"must give one worker in 0..{self.workers - 1} per partition ({self.partitions})",
                "list the owning worker of each partition, or leave owners out (round-robin)",
            )
        return self

    def owner(self, partition: int) -> int:
        """The worker (0-based) that owns `partition` in normal operation."""
        return self.owners[partition] if self.owners else partition % self.workers

    @field_validator("workers")
    @classmethod
    def _check_workers(cls, value: int) -> int:
        return at_least("regions[].workers", value, 1, "a region needs at least one worker")

    @field_validator("concurrency")
    @classmethod
    def _check_concurrency(cls, value: int) -> int:
        return at_least("regions[].concurrency", value, 1, "1 runs one task at a time")

    @field_validator("partitions")
    @classmethod
    def _check_partitions(cls, value: int) -> int:
        return at_least("regions[].partitions", value, 1, "the topology fixes P per region")

    @property
    def slots(self) -> int:
        """Task slots that can be busy at once (idle workers beyond P do not count)."""
        return min(self.workers, self.partitions) * self.concurrency


class FailoverEvent(BaseModel):
    """A region outage at `at_s`; its standby serves its partitions after the delay."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    region: str
    at_s: float = Field(description="simulated time of the outage, seconds")
    promotion_delay_s: float = Field(default=10.0, description="outage to standby serving, seconds")

    @field_validator("at_s", "promotion_delay_s")
    @classmethod
    def _check_times(cls, value: float) -> float:
        return non_negative("failover.at_s/promotion_delay_s", value, "give seconds, >= 0")


class ModelParams(BaseModel):
    """Everything one simulation run needs; `seed` makes it reproducible to the event."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    service_time: ServiceTime = ExponentialService(mean_s=0.005)
    regions: tuple[RegionSpec, ...]
    keys: KeySpace = KeySpace()
    retries: RetryPolicy = RetryPolicy()
    failover: FailoverEvent | None = None
    duration_s: float | None = Field(
        default=None, description="stop arrivals at this time, seconds"
    )
    max_tasks: int | None = Field(default=None, description="stop arrivals after this many tasks")
    warmup_fraction: float = Field(default=0.1, description="share of tasks left out of statistics")
    sample_interval_s: float | None = Field(default=None, description="backlog sampling period, s")
    # The order a worker starts its waiting tasks in. "partitions": round-robin over its
    # partitions, one task of each partition with a waiting task per round, as a worker
    # does (each partition's reader reads when the fetch budget frees, so every waiting
    # partition gets one entry in per wave; docs/simulation.md, "Service order").
    # "fifo": in arrival order across partitions (the M/M/c textbook queue).
    service_order: Literal["partitions", "fifo"] = "partitions"
    seed: int = 0

    @field_validator("duration_s", "sample_interval_s")
    @classmethod
    def _check_duration(cls, value: float | None) -> float | None:
        if value is not None:
            positive("duration_s", value, "give seconds, or leave it out")
        return value

    @field_validator("max_tasks")
    @classmethod
    def _check_tasks(cls, value: int | None) -> int | None:
        if value is not None:
            at_least("max_tasks", value, 1, "give a task count, or leave it out")
        return value

    @field_validator("warmup_fraction")
    @classmethod
    def _check_warmup(cls, value: float) -> float:
        return probability("warmup_fraction", value, "0.1 drops the first 10% of tasks")

    @model_validator(mode="after")
    def _check_topology(self) -> ModelParams:
        names = [region.name for region in self.regions]
        if not names or len(set(names)) != len(names):
            raise ParameterError(
                "regions", names, "need one or more regions with distinct names", "rename"
            )
        for region in self.regions:
            if region.standby is not None and region.standby not in names:
                raise ParameterError(
                    f"regions[{region.name}].standby",
                    region.standby,
                    "no such region",
                    f"use one of {names}",
                )
        if self.failover is not None:
            self._check_failover(self.failover, names)
        self._check_stability()
        return self

    def _check_failover(self, failover: FailoverEvent, names: list[str]) -> None:
        if failover.region not in names:
            raise ParameterError(
                "failover.region", failover.region, "no such region", f"use one of {names}"
            )
        if self.region(failover.region).standby is None:
            raise ParameterError(
                f"regions[{failover.region}].standby",
                None,
                "the failed region has no standby",
                "set standby: <region> for it",
            )

    def _check_stability(self) -> None:
        bounded = self.duration_s is not None or self.max_tasks is not None
        if bounded or any(isinstance(r.arrivals, TraceArrivals) for r in self.regions):
            return
        for region in self.regions:
            rho = self.utilisation(region)
            if rho >= 1.0:
                need = region.arrivals.mean_rate * self.work_per_task / region.concurrency
                raise UnstableLoadError(
                    f"regions[{region.name}].workers",
                    region.workers,
                    f"utilisation is {rho:.3f} >= 1, so the queue grows without bound and a "
                    "steady-state run never ends",
                    f"give more than {need:.1f} workers (and partitions), or bound the run "
                    "with duration_s or max_tasks to study the overload",
                )

    @property
    def work_per_task(self) -> float:
        """Seconds of worker time one task costs on average, retries included."""
        return self.service_time.mean * self.retries.attempts_per_task

    def utilisation(self, region: RegionSpec) -> float:
        return region.arrivals.mean_rate * self.work_per_task / region.slots

    def region(self, name: str) -> RegionSpec:
        for region in self.regions:
            if region.name == name:
                return region
        raise ParameterError(
            "region", name, "no such region", f"use one of {[r.name for r in self.regions]}"
        )

    @property
    def run_tasks(self) -> int | None:
        """The task cap of the run: the given one, or the automatic one when unbounded."""
        if self.max_tasks is not None or self.duration_s is not None:
            return self.max_tasks
        if any(isinstance(r.arrivals, TraceArrivals) for r in self.regions):
            return None
        return DEFAULT_AUTO_TASKS


def load_params(source: Mapping[str, Any] | str | Path) -> ModelParams:
    """Build `ModelParams` from a mapping or a YAML file, with errors that name the field."""
    if isinstance(source, str | Path):
        path = Path(source)
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ParameterError(
                "params file",
                str(path),
                f"cannot be read ({exc})",
                "check the path and the YAML syntax",
            ) from exc
        if not isinstance(data, Mapping):
            raise ParameterError(
                "params file",
                str(path),
                "is not a YAML mapping",
                "start from `homeport plan calibrate` output",
            )
        source = data
    try:
        return ModelParams.model_validate(dict(source))
    except ValidationError as exc:
        raise parameter_error_from(exc) from exc


def parameter_error_from(exc: ValidationError) -> ParameterError:
    """Translate pydantic's first complaint into our error with a field, value and fix."""
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "params"
    return ParameterError(
        field,
        first.get("input"),
        first["msg"],
        "see docs/simulation.md for the parameter file format",
    )
