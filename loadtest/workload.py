"""What the Locust users send: the workload settings and the random draws they use.

A *workload* is the mix of requests one simulated client issues: which partition key
(Zipf-distributed over a fixed key space, so a few keys are hot as in real traffic), how
large a payload, which durability level, and single `Submit` or `SubmitBatch`. It is read
from `HOMEPORT_LOADTEST_*` environment variables, because Locust runs in its own processes
(master and workers) and the environment is the one channel they all inherit.

This module imports neither Locust nor gevent: the CLI and the tests use it in asyncio
processes, where gevent's monkey-patching must never happen.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import os
import random
from collections.abc import Mapping, Sequence

from homeport.loadtest.apps import app as _app
from homeport.loadtest.errors import WorkloadError

KINDS = tuple(_app.kinds)  # the handlers the load test's workers run

DURABILITIES = ("LOCAL", "REGION", "GLOBAL")
ENV_PREFIX = "HOMEPORT_LOADTEST_"


def parse_weights(text: str, field: str) -> tuple[tuple[str, float], ...]:
    """`"64:0.7,1024:0.3"` -> ((\"64\", 0.7), (\"1024\", 0.3)); weights need not sum to 1."""
    pairs: list[tuple[str, float]] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        value, _, weight = part.partition(":")
        try:
            w = float(weight) if weight else 1.0
        except ValueError as exc:
            raise WorkloadError(field, text, f"weight {weight!r} is not a number") from exc
        if w < 0:
            raise WorkloadError(field, text, f"weight {w} is negative")
        pairs.append((value.strip(), w))
    if not pairs or sum(w for _, w in pairs) <= 0:
        raise WorkloadError(field, text, "needs at least one value with a positive weight")
    return tuple(pairs)


@dataclasses.dataclass(frozen=True)
class Workload:
    """One client's request mix. Every field has a `HOMEPORT_LOADTEST_<FIELD>` variable."""

    # Distinct partition keys. Default 10,000. Must be >= 1.
    keys: int = 10_000
    # Zipf exponent s of key popularity (rank r drawn with weight 1/r^s). Default 1.1.
    # Zero = uniform keys.
    zipf_s: float = 1.1
    # Payload sizes in bytes with weights, "size:weight,...". Default "64:0.8,1024:0.2".
    payload_bytes: str = "64:0.8,1024:0.2"
    # Durability levels with weights. Default "LOCAL:0.9,REGION:0.08,GLOBAL:0.02".
    durability: str = "LOCAL:0.9,REGION:0.08,GLOBAL:0.02"
    # Relative weight of single Submit calls in a user's task mix. Default 9. Zero = none.
    single_weight: int = 9
    # Relative weight of SubmitBatch calls. Default 1. Zero = no batches.
    batch_weight: int = 1
    # Tasks per SubmitBatch. Default 50. Must be 1..10,000.
    batch_size: int = 50
    # Handler kind the tasks name (see loadtest/apps.py). Default "noop".
    kind: str = "noop"
    # Calls per second per user (Locust `constant_throughput`). Default 10. Zero = as fast
    # as each call returns.
    rate_per_user: float = 10.0
    # Seconds a call may take before it fails with DEADLINE_EXCEEDED. Default 10.
    timeout_s: float = 10.0
    # Seed of the users' random sources (each user adds its own number). Default 0.
    seed: int = 0

    def __post_init__(self) -> None:
        if self.keys < 1:
            raise WorkloadError("keys", self.keys, "must be >= 1")
        if self.kind not in KINDS:
            raise WorkloadError(
                "kind", self.kind, f"no such handler in loadtest/apps.py; use one of {KINDS}"
            )
        if self.zipf_s < 0:
            raise WorkloadError("zipf_s", self.zipf_s, "must be >= 0 (0 = uniform)")
        if not 1 <= self.batch_size <= 10_000:
            raise WorkloadError("batch_size", self.batch_size, "must be 1..10,000")
        if (
            self.single_weight < 0
            or self.batch_weight < 0
            or (self.single_weight + self.batch_weight == 0)
        ):
            raise WorkloadError(
                "single_weight",
                self.single_weight,
                "single and batch weights must be >= 0, not both 0",
            )
        if self.rate_per_user < 0 or self.timeout_s <= 0:
            raise WorkloadError(
                "rate_per_user", self.rate_per_user, "rate must be >= 0 and timeout_s > 0"
            )
        for size, _ in self.payload_sizes():
            if not size.isdigit():
                raise WorkloadError(
                    "payload_bytes", self.payload_bytes, f"size {size!r} is not a byte count"
                )
        for level, _ in self.durabilities():
            if level not in DURABILITIES:
                raise WorkloadError(
                    "durability",
                    self.durability,
                    f"{level!r} is not one of {', '.join(DURABILITIES)}",
                )

    def payload_sizes(self) -> tuple[tuple[str, float], ...]:
        return parse_weights(self.payload_bytes, "payload_bytes")

    def durabilities(self) -> tuple[tuple[str, float], ...]:
        return parse_weights(self.durability, "durability")

    def to_env(self) -> dict[str, str]:
        return {
            ENV_PREFIX + f.name.upper(): str(getattr(self, f.name))
            for f in dataclasses.fields(self)
        }

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Workload:
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None:
                continue
            kind: type = type(f.default)
            try:
                values[f.name] = kind(raw)
            except ValueError as exc:
                raise WorkloadError(f.name, raw, f"is not a {kind.__name__}") from exc
        return cls(**values)  # type: ignore[arg-type]


class Draws:
    """The random choices of one user, from its own seeded source (reproducible runs)."""

    def __init__(self, workload: Workload, rng: random.Random) -> None:
        self.rng = rng
        weights = [1.0 / (rank**workload.zipf_s) for rank in range(1, workload.keys + 1)]
        self._key_cdf = list(itertools.accumulate(weights))
        sizes = workload.payload_sizes()
        self._payloads = [b"x" * int(size) for size, _ in sizes]
        self._payload_cdf = list(itertools.accumulate(w for _, w in sizes))
        levels = workload.durabilities()
        self._levels = [level for level, _ in levels]
        self._level_cdf = list(itertools.accumulate(w for _, w in levels))

    @staticmethod
    def _pick(cdf: Sequence[float], rng: random.Random) -> int:
        return min(bisect.bisect_left(cdf, rng.random() * cdf[-1]), len(cdf) - 1)

    def key_rank(self) -> int:
        """1 for the hottest key; P(rank r) is proportional to 1/r^s."""
        return self._pick(self._key_cdf, self.rng) + 1

    def key(self) -> str:
        return f"lt-{self.key_rank()}"

    def payload(self) -> bytes:
        return self._payloads[self._pick(self._payload_cdf, self.rng)]

    def durability(self) -> str:
        return self._levels[self._pick(self._level_cdf, self.rng)]
