#!/usr/bin/env python3
"""An undersized-standby drain per standby worker and per partition, from a game day's
history alone (no kept cluster needed).

    scripts/drain-by-worker.py OUT/undersized-standby-SEED/history.jsonl [--step 0.5]

Prints the capacity decision (predicted drain, outage, rate, hold, scale delay); the
backlog (the home's tasks sent before the promotion and first run in the standby) per
partition; each standby worker's first start after the route moved and its partitions;
then per step, in seconds after the route moved: the home's acknowledged tasks waiting,
starts per worker, each worker's busy slots (handler time / step) and the waiting tasks
per partition. With a backlog waiting, busy slots below the worker's slots mean the
worker did not get the rate the model assumes (docs/failover-model.md, "Undersized
standby").
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

from homeport.chaos.history import Execution, read_history
from homeport.core.partitioner import partition_of


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("history")
    ap.add_argument("--step", type=float, default=0.5, help="seconds per row")
    ap.add_argument("--rows", type=int, default=14)
    args = ap.parse_args()
    history = read_history(Path(args.history))
    partitions = int(history.meta["scenario"]["topology"].get("partitions", 16))
    failover = next((json.loads(e.detail) for e in history.events if e.kind == "failover"), None)
    if failover is None or not failover.get("capacity"):
        raise SystemExit(f"{args.history}: no promotion with a capacity decision")
    cap, home, standby = failover["capacity"], failover["home"], failover["to"]
    moved = failover["at"] + failover["seconds"]
    print(f"{home} -> {standby}: predicted drain {cap['after_drain_s']:.2f} s with "
          f"{cap['workers_ordered']} workers; outage {cap['outage_s']:.2f} s, rate "
          f"{cap['rate_per_s']:.2f}/s, hold {cap['hold_mean_s'] * 1e3:.1f} ms, scale delay "
          f"{cap['scale_delay_s']:.2f} s")  # fmt: skip
    ops = {o.id: o for o in history.ops}
    first: dict[str, Execution] = {}
    for e in sorted(history.execs, key=lambda e: e.start):
        first.setdefault(e.task_id, e)
    rows = []  # (acked, start, end, worker, partition, backlog), seconds after the move
    for tid, e in first.items():
        o = ops.get(tid)
        if o is None or o.acked is None or o.home != home or e.region != standby:
            continue
        if e.start < failover["at"]:
            continue
        end = e.end if e.end is not None else e.start
        rows.append((o.acked - moved, e.start - moved, end - moved, e.worker,
                     partition_of(o.key, partitions), o.sent < failover["at"]))  # fmt: skip
    backlog = collections.Counter(r[4] for r in rows if r[5])
    print(f"backlog: {sum(backlog.values())} tasks, per partition {dict(sorted(backlog.items()))}")
    workers = sorted({r[3] for r in rows})
    for w in workers:
        mine = sorted((r for r in rows if r[3] == w), key=lambda r: r[1])
        print(f"worker {w}: first start {mine[0][1]:+.2f} s, partitions "
              f"{sorted({r[4] for r in mine})}")  # fmt: skip
    print("t (s)  waiting  starts/worker  busy slots/worker  waiting/partition")
    step = args.step
    for i in range(args.rows):
        t0, t1 = i * step, (i + 1) * step
        waiting = [r for r in rows if r[0] <= t0 < r[1]]
        starts = [sum(1 for r in rows if r[3] == w and t0 <= r[1] < t1) for w in workers]
        busy = [
            round(sum(max(0.0, min(r[2], t1) - max(r[1], t0)) for r in rows if r[3] == w)
                  / step, 2)
            for w in workers
        ]  # fmt: skip
        per = dict(sorted(collections.Counter(r[4] for r in waiting).items()))
        print(f"{t0:5.1f}  {len(waiting):7d}  {starts}  {busy}  {per}")


if __name__ == "__main__":
    main()
