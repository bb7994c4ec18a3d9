"""The measuring point inside every contender's no-op handler.

A worker process is told by environment variables what to measure:

- `HP_BENCH_MODE=throughput`: count handler starts; at the `HP_BENCH_N`-th, write
  `{"first": t, "last": t}` (unix seconds of the first and the N-th handler start) to
  `HP_BENCH_OUT`;
- `HP_BENCH_MODE=latency`: each task carries its enqueue time (unix seconds); record
  `now - enqueued` at handler start; a negative stamp is a warm-up probe that only
  creates `HP_BENCH_OUT.ready`; after N stamped tasks write `{"latencies": [...]}`.

Handlers may run on several threads (Dramatiq, Huey), so counting takes a lock.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

_LOCK = threading.Lock()
_STATE: dict[str, object] = {"count": 0, "first": 0.0, "latencies": []}


def _out() -> Path:
    return Path(os.environ["HP_BENCH_OUT"])


def _write(doc: dict[str, object]) -> None:
    tmp = _out().with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(_out())  # atomic: the driver never reads half a file


def mark(stamp: float = 0.0) -> None:
    """Call first thing in a no-op handler, with the task's enqueue stamp (latency mode)."""
    now = time.time()
    n = int(os.environ.get("HP_BENCH_N", "0"))
    with _LOCK:
        if os.environ.get("HP_BENCH_MODE") == "latency":
            if stamp < 0:
                Path(f"{_out()}.ready").touch()
                return
            lat = _STATE["latencies"]
            assert isinstance(lat, list)
            lat.append(now - stamp)
            if len(lat) == n:
                _write({"latencies": lat})
            return
        count = int(_STATE["count"]) + 1  # type: ignore[call-overload]
        _STATE["count"] = count
        if count == 1:
            _STATE["first"] = now
        if count == n:
            _write({"first": _STATE["first"], "last": now})
