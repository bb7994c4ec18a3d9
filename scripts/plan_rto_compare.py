"""Measured RTOs of game days against `homeport plan rto` (issue 20, docs/simulation.md).

    python scripts/plan_rto_compare.py --fault region \
        reports/region-loss-1/history.jsonl=/tmp/homeport-chaos-region-loss-XXXX ...

Each argument pairs a run's history with its kept cluster state directory (`homeport
chaos run --keep`). From the history: the RTO as the checker measures it. From the
agents' logs: the promotion's duration (the controller's `judged-down` to `promoted`
lines, the model's `promotion_s` samples) and whether the controller leader was lost
(a new `elected` line after the fault). The model is then run with those component
samples and the code's own timings, and its median is compared with the measured one.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import statistics
from pathlib import Path

from homeport.chaos.checker import check
from homeport.chaos.history import read_history
from homeport.router.client import RetryPolicy
from homeport.simulation.rto import RtoParams, predict

LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*controller (\S+): (\S+) (\S+):")


def _stamp(text: str) -> float:
    when = dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=dt.UTC)
    return when.timestamp()


def controller_events(state: Path) -> list[tuple[float, str, str, str]]:
    out = []
    for log in sorted((state / "cluster" / "logs").glob("agent-*.log")):
        for line in log.read_text(errors="replace").splitlines():
            m = LINE.match(line)
            if m:
                out.append((_stamp(m.group(1)), m.group(2), m.group(3), m.group(4)))
    return sorted(out)


def one_run(history_path: Path, state: Path) -> dict[str, float | bool | None]:
    history = read_history(history_path)
    fault = next(f for f in history.faults if f.fault in ("lose_region", "kill"))
    events = [e for e in controller_events(state) if e[0] >= fault.start]
    judged = next((e for e in events if e[2] == "judged-down"), None)
    promoted = next(
        (e for e in events if e[2] == "promoted" and judged and e[0] >= judged[0]), None
    )
    elected = any(e[2] == "elected" and (judged is None or e[0] <= judged[0]) for e in events)
    return {
        "rto_s": check(history).rto_s,
        "judged_s": judged[0] - fault.start if judged else None,
        "promotion_s": promoted[0] - judged[0] if promoted and judged else None,
        "leader_lost": elected,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fault", choices=["region", "primary"], required=True)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--attempts", type=int, default=3)
    parser.add_argument("runs", nargs="+", help="HISTORY=STATE_DIR")
    args = parser.parse_args()
    rows = []
    for pair in args.runs:
        history, _, state = pair.partition("=")
        rows.append(one_run(Path(history), Path(state)))
    print("| run | measured RTO (s) | judged down after (s) | promotion (s) | leader lost |")
    print("|---|---|---|---|---|")
    for i, r in enumerate(rows, 1):
        cells = [f"{r[k]:.2f}" if isinstance(r[k], float) else str(r[k]) for k in r]
        print(f"| {i} | " + " | ".join(cells) + " |")
    promotions = tuple(float(r["promotion_s"]) for r in rows if r["promotion_s"] is not None)
    lost = sum(1 for r in rows if r["leader_lost"]) / len(rows)
    params = RtoParams(
        fault=args.fault, promotion_s=promotions or (0.17,), leader_lost_p=lost,
        rate_per_s=args.rate, retry=RetryPolicy(attempts=args.attempts),
    )  # fmt: skip
    dist = predict(params, 4000, seed=1).summary()
    measured = [float(r["rto_s"]) for r in rows if r["rto_s"] is not None]
    med = statistics.median(measured)
    print()
    print(
        f"predicted p05/p50/p95 {dist['p05_s']:.2f}/{dist['p50_s']:.2f}/{dist['p95_s']:.2f} s; "
        f"measured median {med:.2f} s (n={len(measured)}); ratio {med / dist['p50_s']:.2f}; "
        f"within 20 %: {abs(med - dist['p50_s']) <= 0.2 * dist['p50_s']}"
    )


if __name__ == "__main__":
    main()
