"""The history of one game day: what clients did and what workers ran, as JSONL.

One JSON object per line, `type` first:

- `meta`: scenario, seed, wall-clock start `t0`, the planned timeline;
- `op`: one client submit: `id`, `key`, `home`, `durability`, `sent`, then either `acked`
  or `error` + `error_at` (absolute Unix seconds);
- `exec`: one execution from an `attempts` row of some region's database: `task_id`,
  `attempt`, `worker`, `region`, `db` (whose database), `epoch` (of the task record),
  `start`, `end`, `status`;
- `fault`: one applied step occurrence: `fault`, `targets`, `start`, `end`, `detail`;
- `event`: a failover event (`promoted`, `failed-back`, `route`), `at`, `home`, `detail`;
- `lag`: a mirror-lag sample: `at`, `home`, `seconds`, `bytes`, `link_up`.

The checker reads nothing else: a history file is enough to judge a run again.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from homeport.errors import HomeportError


@dataclass
class Op:
    id: str
    key: str
    durability: str
    sent: float
    home: str = ""
    acked: float | None = None
    error: str | None = None
    error_at: float | None = None

    @property
    def latency_ms(self) -> float | None:
        return (self.acked - self.sent) * 1000 if self.acked is not None else None


@dataclass
class Execution:
    task_id: str
    start: float
    end: float | None = None
    attempt: int = 1
    worker: str = ""
    region: str = ""
    db: str = ""
    epoch: int = 0
    status: str = "succeeded"


@dataclass
class FaultRecord:
    fault: str
    step: int
    start: float
    end: float | None = None
    targets: list[str] = field(default_factory=list)
    detail: str = ""
    occurrence: int = 0
    disruptive: bool = True


@dataclass
class Event:
    at: float
    kind: str
    home: str = ""
    detail: str = ""


@dataclass
class LagSample:
    at: float
    home: str
    seconds: float
    bytes: int = 0
    link_up: bool = True


@dataclass
class History:
    meta: dict[str, Any] = field(default_factory=dict)
    ops: list[Op] = field(default_factory=list)
    execs: list[Execution] = field(default_factory=list)
    faults: list[FaultRecord] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    lags: list[LagSample] = field(default_factory=list)

    def in_fault(self, t: float) -> bool:
        """Whether `t` falls in a disruptive fault's window (an open-ended one lasts to
        the last submit)."""
        last = max((op.sent for op in self.ops), default=0.0)
        return any(
            f.start <= t <= (f.end if f.end is not None else max(last, f.start))
            for f in self.faults
            if f.disruptive
        )

    @property
    def t0(self) -> float:
        t0 = self.meta.get("t0")
        if isinstance(t0, int | float):
            return float(t0)
        return min((op.sent for op in self.ops), default=0.0)

    def write(self, path: Path) -> None:
        with path.open("w") as out:
            self.dump(out)

    def dump(self, out: IO[str]) -> None:
        out.write(json.dumps({"type": "meta", **self.meta}) + "\n")
        groups: list[tuple[str, list[Any]]] = [
            ("fault", self.faults), ("event", self.events), ("lag", self.lags),
            ("op", self.ops), ("exec", self.execs),
        ]  # fmt: skip
        for kind, items in groups:
            for item in items:
                out.write(json.dumps({"type": kind, **asdict(item)}) + "\n")


_TYPES: dict[str, tuple[str, type[Any]]] = {
    "op": ("ops", Op),
    "exec": ("execs", Execution),
    "fault": ("faults", FaultRecord),
    "event": ("events", Event),
    "lag": ("lags", LagSample),
}


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


class HistoryError(HomeportError, ValueError):
    """A history file cannot be read; names the line and what is wrong with it."""


def read_history(path: Path) -> History:
    history = History()
    with path.open() as lines:
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                kind = record.pop("type")
                if kind == "meta":
                    history.meta = record
                    continue
                attr, cls = _TYPES[kind]
                getattr(history, attr).append(cls(**record))
            except (ValueError, KeyError, TypeError) as exc:
                raise HistoryError(f"{path}:{n}: not a history record ({exc})") from exc
    return history
