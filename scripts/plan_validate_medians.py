"""Medians over repeats of `homeport plan validate`, beside two other predictions.

Usage: .venv/bin/python scripts/plan_validate_medians.py OUT  (OUT of plan-validate.sh)
For each worker count and load level: the median over repeats of the measured rate, the
level's own ρ (its mean slot hold), the measured and predicted p50/p99 queue waits (the
model calibrated on the first level and replaying each level's measured arrivals), the
model with the level's own hold (diagnosis), and the prediction with Poisson arrivals
at the measured rate (what `plan validate` did before arrival_times_s), and with a FIFO
service order (before `service_order: partitions`), and the spread of the p99 of one
model run as long as the measured one (10th–90th percentile over 20 seeds; medians of
each bound). Ratios are of the medians.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

from homeport.simulation.exports import load_export
from homeport.simulation.validation import validate


def main(root: Path) -> None:
    rows: dict[tuple[str, str], list[dict[str, float]]] = {}
    for rep in sorted(root.glob("r*")):
        for workers in ("w1", "w2"):
            files = sorted((rep / workers).glob("[ru]*/export.json"), key=lambda p: p.parent.name)
            if len(files) < 3:
                continue
            exports = [(f.parent.name, load_export(f)) for f in files]
            _, replay = validate(exports, tasks=50_000)
            _, poisson = validate(exports, tasks=50_000, arrivals="poisson", spread_seeds=0)
            _, fifo = validate(exports, tasks=50_000, order="fifo", spread_seeds=0)
            by_label = {c.label: c for c in poisson}
            fifo_by_label = {c.label: c for c in fifo}
            for c in replay:
                load = (rep / workers / f"{c.label}.load").read_text().split(":")[-1].strip()
                rows.setdefault((workers, c.label), []).append(
                    {
                        "rate": c.rate_per_s,
                        "rho": c.measured_utilisation,
                        "hold": c.hold_mean_s,
                        "m50": c.measured_p50_s,
                        "p50": c.predicted_p50_s,
                        "m99": c.measured_p99_s,
                        "p99": c.predicted_p99_s,
                        "own99": c.own_p99_s,
                        "poisson99": by_label[c.label].predicted_p99_s,
                        "fifo99": fifo_by_label[c.label].predicted_p99_s,
                        "low99": c.run_p99_low_s,
                        "high99": c.run_p99_high_s,
                        "load1": float(load.split(",")[0]),
                    }
                )
    print(
        "| workers | level | repeats | load avg (1 min) | rate/s | ρ (own hold) | hold | "
        "p50 measured | p50 predicted | p50 m/p | p99 measured | p99 predicted | p99 m/p | "
        "p99 one run (10–90 %) | p99 own-hold model | p99 Poisson model | p99 FIFO model |"
    )
    print("|---" * 17 + "|")
    for (workers, label), found in sorted(rows.items()):
        med = {k: statistics.median(r[k] for r in found) for k in found[0]}
        loads = "/".join(f"{r['load1']:.1f}" for r in found)
        ms = {k: f"{med[k] * 1e3:.1f} ms" for k in ("hold", "m50", "p50", "m99", "p99")}
        print(
            f"| {workers[1:]} | {label} | {len(found)} | {loads} | {med['rate']:.1f} | "
            f"{med['rho']:.2f} | {ms['hold']} | {ms['m50']} | {ms['p50']} | "
            f"{med['m50'] / med['p50']:.2f} | {ms['m99']} | {ms['p99']} | "
            f"{med['m99'] / med['p99']:.2f} | "
            f"{med['low99'] * 1e3:.0f}–{med['high99'] * 1e3:.0f} ms | "
            f"{med['own99'] * 1e3:.0f} ms | "
            f"{med['poisson99'] * 1e3:.0f} ms | {med['fifo99'] * 1e3:.0f} ms |"
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
