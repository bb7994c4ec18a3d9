#!/usr/bin/env python3
"""Where a host's CPU goes, per component of a homeport cluster, over a window.

    scripts/cpu-by-component.py SECONDS [--every 0.5]

Samples every process's CPU time (psutil, which the `lab` extra brings with Locust) and
prints the cores each component used on average over the window: Redis, etcd,
PostgreSQL, Toxiproxy, Prometheus, and homeport's processes by subcommand (worker,
agent, gateway, chaos, ...). Run it beside an idle `homeport dev up` cluster to see its
idle cost, or beside a game day (docs/failover-model.md, "Undersized standby", and
docs/benchmarks.md, "Idle cost").
"""

from __future__ import annotations

import argparse
import collections
import re
import time

import psutil

SERVERS = {
    "redis-server": "redis",
    "etcd": "etcd",
    "postgres": "postgres",
    "toxiproxy": "toxiproxy",
    "prometheus": "prometheus",
}


def component(cmdline: list[str]) -> str:
    text = " ".join(cmdline)
    found = re.search(r"homeport (\w[\w-]*)", text)
    if found:
        return f"homeport {found.group(1)}"
    for needle, name in SERVERS.items():
        if needle in text:
            return name
    return "other"


def cpu_times() -> dict[int, tuple[str, float]]:
    out = {}
    for proc in psutil.process_iter(["cmdline"]):
        try:
            t = proc.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        out[proc.pid] = (component(proc.info["cmdline"] or []), t.user + t.system)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("seconds", type=float, help="length of the window")
    parser.add_argument("--every", type=float, default=0.5, help="seconds between samples")
    args = parser.parse_args()
    used: collections.Counter[str] = collections.Counter()
    last, start = cpu_times(), time.monotonic()
    while time.monotonic() - start < args.seconds:
        time.sleep(args.every)
        now = cpu_times()
        for pid, (name, seconds) in now.items():
            if pid in last:  # a process born inside the window counts from its first sample
                used[name] += max(0.0, seconds - last[pid][1])
        last = now
    span = time.monotonic() - start
    print(f"cores used over {span:.1f}s: {sum(used.values()) / span:.2f} in all")
    for name, seconds in used.most_common():
        print(f"  {seconds / span:5.2f}  {name}")


if __name__ == "__main__":
    main()
