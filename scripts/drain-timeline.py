#!/usr/bin/env python3
"""Where the time of an undersized-standby drain goes, from one kept game-day run.

    scripts/drain-timeline.py OUT/undersized-standby-SEED STATE_DIR/cluster

OUT is `homeport chaos run --out`, STATE_DIR the cluster kept by `--keep`
(/tmp/homeport-chaos-<scenario>-*/cluster). Prints, in seconds after the route moved:
the standby agent's log lines about the home (failover seen, scale order, scale-up),
each standby worker's log (process up, booted, rebalances), each standby worker's first
task of the home and its completions per second; then the backlog (acknowledged tasks
of the home not yet started) second by second.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def _t(line: str) -> float | None:
    m = STAMP.match(line)
    return datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp() if m else None


def _log_lines(path: Path, since: float, keep: Any) -> list[tuple[float, str]]:
    found = []
    for line in path.read_text(errors="replace").splitlines():
        t = _t(line)
        if t is not None and t >= since and keep(line):
            found.append((t, line.split(": ", 1)[-1]))
    return found


def _decision(rows: list[dict[str, Any]]) -> dict[str, Any]:
    fo: dict[str, Any] = next(
        json.loads(r["detail"])
        for r in rows
        if r.get("type") == "event" and r.get("kind") == "failover"
    )
    cap = fo["capacity"]
    moved = fo["at"] + fo["seconds"]
    fault = next(r for r in rows if r.get("type") == "fault")
    print(f"{fo['home']} -> {fo['to']}; decision {cap['verdict']}: {cap['reason']}")
    print(
        f"  rate {cap['rate_per_s']:.2f}/s hold {cap['hold_mean_s'] * 1e3:.0f} ms "
        f"outage {cap['outage_s']:.2f} s workers {cap['workers']} -> "
        f"{cap['workers_ordered']}; scale delay {cap.get('scale_delay_s', '?')} s; "
        f"predicted drain {cap['after_drain_s']:.2f} s"
    )
    print(f"  loss at {fault['start'] - moved:+.2f} s; promotion took {fo['seconds']:.2f} s")
    return {"home": fo["home"], "standby": fo["to"], "moved": moved}


def _executions(
    out: Path, standby: str, acked: dict[str, float]
) -> tuple[dict[str, tuple[float, int]], dict[int, list[float]]]:
    """First start (time, pid) of each acked task in the standby; ends by pid."""
    starts: dict[str, tuple[float, int]] = {}
    ends: dict[int, list[float]] = {}
    for line in (out / "journal.jsonl").read_text().splitlines():
        j = json.loads(line)
        if j["region"] != standby or j["task_id"] not in acked:
            continue
        if "start" in j:
            if j["task_id"] not in starts or j["start"] < starts[j["task_id"]][0]:
                starts[j["task_id"]] = (j["start"], j["pid"])
        elif "end" in j:
            ends.setdefault(j["pid"], []).append(j["end"])
    return starts, ends


def main(out: Path, state: Path) -> None:
    rows = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines() if x]
    d = _decision(rows)
    home, standby, moved = d["home"], d["standby"], d["moved"]
    logs = state / "logs"
    lines = _log_lines(
        logs / f"agent-{standby}.log", moved - 10, lambda s: home in s and "agent" in s
    )
    for path in sorted(logs.glob(f"worker-{standby}-{home}-*.log")):
        tag = path.stem.rsplit("-", 1)[-1]
        got = _log_lines(path, moved - 10, lambda s: "stopped" not in s)
        lines += [(t, f"worker {tag}: {text}") for t, text in got]
    for t, text in sorted(lines):
        print(f"  {t - moved:+7.2f} {text}")
    acked = {
        r["id"]: r["acked"]
        for r in rows
        if r.get("type") == "op" and r.get("home") == home and r.get("acked")
    }
    starts, ends = _executions(out, standby, acked)
    first: dict[int, float] = {}
    for s, pid in starts.values():
        if s >= moved:
            first[pid] = min(first.get(pid, s), s)
    for pid, s in sorted(first.items(), key=lambda x: x[1]):
        done = [e - moved for e in ends.get(pid, [])]
        per_s = [sum(1 for e in done if k <= e < k + 1) for k in range(12)]
        print(f"  pid {pid}: first task {s - moved:+.2f} s; completions per s: {per_s}")
    backlog = []
    for k in range(31):
        t = moved + k
        n = sum(1 for tid, a in acked.items() if a <= t and starts.get(tid, (0.0, 0))[0] > t)
        backlog.append(f"{k}:{n}")
    print("  backlog (acked, first run by the standby later) at t+s:")
    print("   ", " ".join(backlog))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
