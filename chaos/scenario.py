"""Scenario files: a game day as a runbook a person can read, validated before anything runs.

A scenario names a hypothesis, the steady-state metric that shows the system is healthy,
the topology shape, the load, a timeline of fault steps, stop conditions, and the
invariants and SLOs the checker judges. `load_scenario` refuses a bad file with a
`ScenarioError` naming the field, the bad value and the fix: an unknown link or component,
a toxic attribute out of range, or two steps that cannot both be applied at once (the same
toxic twice on one link, a kill of a paused process, a failback with nothing to fail back).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from homeport.chaos.catalog import Catalog, catalog
from homeport.chaos.errors import ScenarioError
from homeport.core.config import read_yaml
from homeport.regions.topology import CapacityPolicy
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

Durability = Literal["LOCAL", "REGION", "GLOBAL"]
DURABILITIES: tuple[Durability, ...] = ("LOCAL", "REGION", "GLOBAL")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SteadyState(_Model):
    """The metric that says "healthy", measured before the first fault and after the last
    one is reverted. `ack_ratio`: acknowledged / sent; `p99_ms`: submit latency."""

    metric: Literal["ack_ratio", "p99_ms"] = "ack_ratio"
    at_least: float | None = None
    at_most: float | None = None


class TopologyShape(_Model):
    regions: int = Field(default=3, ge=1, le=7)
    partitions: int = Field(default=4, ge=1, le=256)
    workers_per_region: int = Field(default=1, ge=1, le=8)
    # Regions whose Redis runs as a real Redis Cluster (3 masters, their replicas, and
    # mirrors in the standby: `homeport dev up --cluster-region`); the others run single.
    cluster_regions: list[str] = []
    # Slots of every worker process (`HOMEPORT_CONCURRENCY`; None = the settings'
    # default), and the topology's `capacity:` block (None = its defaults): together they
    # let a game day run a standby too small for its partner (`undersized-standby`).
    worker_concurrency: int | None = Field(default=None, ge=1, le=4096)
    # Entries every worker process reads ahead of its slots (`HOMEPORT_PREFETCH`; None =
    # the settings' default, 0).
    worker_prefetch: int | None = Field(default=None, ge=0, le=65536)
    capacity: CapacityPolicy | None = None

    @field_validator("cluster_regions")
    @classmethod
    def _known_regions(cls, value: list[str], info: ValidationInfo) -> list[str]:
        from homeport.regions.devcluster import REGION_NAMES

        names = REGION_NAMES[: info.data.get("regions", 3)]
        for name in value:
            if name not in names:
                raise ValueError(
                    f"{name!r} is not a region of this topology; use one of {list(names)} "
                    "(the first `regions` names)"
                )
        return value


class Load(_Model):
    """`rate`: submits per second (0 = no load); `duration_s`: how long the load runs;
    `keys`: distinct partition keys; `durability`: weight of each level (normalised)."""

    rate: float = Field(default=40.0, ge=0, le=5000)
    duration_s: float = Field(default=30.0, gt=0, le=3600)
    keys: int = Field(default=50, ge=1, le=100_000)
    distribution: Literal["uniform", "zipf"] = "uniform"
    zipf_s: float = Field(default=1.1, gt=1.0, le=5.0)
    durability: dict[Durability, float] = Field(
        default_factory=lambda: dict.fromkeys(DURABILITIES, 1.0)
    )
    task_ms: float = Field(default=2.0, ge=0, le=10_000)
    timeout_s: float = Field(default=2.0, gt=0, le=60)
    attempts: int = Field(default=3, ge=1, le=20)

    @model_validator(mode="after")
    def _weights(self) -> Load:
        if not self.durability or sum(self.durability.values()) <= 0:
            raise ValueError("durability weights must include at least one level above 0")
        if any(w < 0 for w in self.durability.values()):
            raise ValueError("durability weights cannot be negative")
        return self


class Target(_Model):
    """Which processes a process fault acts on: one `component` by name, or `count` of
    the components of `kind` (optionally in `region`), chosen with the run's seed."""

    component: str | None = None
    kind: str | None = None
    region: str | None = None
    count: int = Field(default=1, ge=1, le=64)

    @model_validator(mode="after")
    def _one_way(self) -> Target:
        if (self.component is None) == (self.kind is None):
            raise ValueError("give either 'component' (a name) or 'kind' (+ optional 'region')")
        return self


class Repeat(_Model):
    every_s: float = Field(gt=0, le=3600)
    times: int = Field(ge=1, le=1000)


class Step(_Model):
    """One fault of the timeline. `at`: seconds after the load starts; `for`: how long
    it stays applied (unset = until the end of the run); `start_jitter_s`: a seeded random
    delay added to `at`, so different seeds try different interleavings."""

    at: float = Field(ge=0, le=3600)
    for_s: float | None = Field(default=None, alias="for", gt=0, le=3600)
    fault: str
    link: str | None = None
    links: list[str] = []
    region: str | None = None
    target: Target | None = None
    stream: Literal["downstream", "upstream", "both"] = "downstream"
    toxicity: float = Field(default=1.0, ge=0, le=1)
    params: dict[str, Any] = {}
    start_jitter_s: float = Field(default=0.0, ge=0, le=60)
    repeat: Repeat | None = None
    note: str = ""

    def all_links(self) -> list[str]:
        return ([self.link] if self.link else []) + list(self.links)


class StopConditions(_Model):
    """`max_duration_s`: hard cap on the whole run; `abort_error_ratio`: stop the load
    early when this share of the last `window_s` seconds of submits failed (0 = never);
    `drain_s`: how long to wait for acknowledged tasks to run after the load ends."""

    max_duration_s: float = Field(default=120.0, gt=0, le=7200)
    abort_error_ratio: float = Field(default=0.0, ge=0, le=1)
    window_s: float = Field(default=5.0, gt=0, le=600)
    drain_s: float = Field(default=20.0, ge=0, le=600)


class Invariants(_Model):
    """`no_loss`: the levels at which an acknowledged task may never be lost (outside the
    RPO window of a region loss, LOCAL and REGION losses are violations too);
    `max_duplicates`: executions beyond the first, at most (-1 = unbounded); `rpo`: the
    RPO window a region loss is judged by, `reported` (the mirror lag sampled before it)
    or `predicted` (the model of `regions.rpo` fed with the run's measurements, which also
    bounds how many LOCAL/REGION tasks may be lost: `chaos.rpo`)."""

    no_loss: list[Durability] = Field(default_factory=lambda: list(DURABILITIES))
    max_duplicates: int = Field(default=-1, ge=-1)
    per_key_order: bool = True
    rpo: Literal["reported", "predicted"] = "reported"


class Slos(_Model):
    """Latency in milliseconds of acknowledged submits (outside fault windows unless
    `during_faults`), recovery time in seconds, the least share of submits acked, and
    how soon accepted tasks run again (see `chaos.execution`)."""

    p50_ms: float | None = Field(default=None, gt=0)
    p99_ms: float | None = Field(default=None, gt=0)
    during_faults: bool = False
    max_rto_s: float | None = Field(default=None, ge=0)
    max_switch_s: float | None = Field(default=None, ge=0)
    min_ack_ratio: float | None = Field(default=None, ge=0, le=1)
    max_mirror_lag_s: float | None = Field(default=None, ge=0)
    # Execution recovery (chaos.execution), per home region: the longest stretch with
    # tasks waiting and none running; the worst ack -> start wait of any task; the ack ->
    # start p99 outside faults (ms); the time from a region loss to its first task run
    # on the standby.
    max_stall_s: float | None = Field(default=None, gt=0)
    max_start_s: float | None = Field(default=None, gt=0)
    start_p99_ms: float | None = Field(default=None, gt=0)
    max_first_run_s: float | None = Field(default=None, gt=0)
    first_run_after_rto_s: float | None = Field(default=None, ge=0)
    # Re-protection: seconds from a region loss until GLOBAL submits of every home are
    # acknowledged again (a spare replaces the lost cross-region replica).
    max_reprotect_s: float | None = Field(default=None, gt=0)
    # Undersized standby (`chaos.drain`): the measured backlog drain after a promotion the
    # capacity check found undersized, within this share of the model's prediction; a
    # task waiting longer than `drain_wait_s` (seconds) counts as backlog.
    drain_tolerance: float | None = Field(default=None, gt=0, le=10)
    drain_wait_s: float | None = Field(default=None, gt=0)


class Alerts(_Model):
    """Prometheus alerts (deploy/prometheus/alerts.rules.yml) that must have fired
    during the run (`fire`) and be resolved after it (`resolve`); naming any starts the
    cluster with a real Prometheus (`chaos.alerts`)."""

    fire: list[str] = []
    resolve: list[str] = []
    resolve_s: float = Field(default=90.0, gt=0, le=600)


class Scenario(_Model):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")
    hypothesis: str = Field(min_length=10)
    steady_state: SteadyState = SteadyState()
    topology: TopologyShape = TopologyShape()
    load: Load = Load()
    timeline: list[Step] = []
    stop: StopConditions = StopConditions()
    invariants: Invariants = Invariants()
    slos: Slos = Slos()
    alerts: Alerts = Alerts()
    ci: bool = False
    tags: list[str] = []

    @property
    def catalog(self) -> Catalog:
        return catalog(self.topology.regions, self.topology.workers_per_region)


def _field(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


def parse_scenario(data: Any, source: str = "scenario") -> Scenario:
    """Validate parsed YAML into a Scenario, then check every step against the topology
    and against the other steps. Raises ScenarioError on the first problem."""
    from homeport.chaos.faults import check_timeline

    if not isinstance(data, dict):
        raise ScenarioError("<root>", type(data).__name__, "must be a YAML mapping", source)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ScenarioError(_field(err["loc"]), err.get("input"), err["msg"], source) from None
    try:
        check_timeline(scenario)
    except ScenarioError as exc:
        raise ScenarioError(exc.field, exc.value, exc.reason, source) from None
    return scenario


def load_scenario(path: Path) -> Scenario:
    return parse_scenario(read_yaml(path, ScenarioError, "<file>"), str(path))
