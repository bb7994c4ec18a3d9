"""Medians over repeats of `homeport plan validate`, beside the old (handler-time) fit.

Usage: .venv/bin/python scripts/plan_validate_medians.py OUT  (OUT of plan-validate.sh)
For each worker count and load level: the median over repeats of the measured rate and
queue waits, the prediction calibrated on the slot hold time, and the prediction with
`slot_hold_s` removed from the exports (the handler-time calibration it replaced).
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
            _, hold = validate(exports, tasks=50_000)
            old = [(label, e.model_copy(update={"slot_hold_s": None})) for label, e in exports]
            _, handler = validate(old, tasks=50_000)
            by_label = {c.label: c for c in handler}
            for c in hold:
                rows.setdefault((workers, c.label), []).append(
                    {
                        "rate": c.rate_per_s,
                        "rho": c.utilisation,
                        "m50": c.measured_p50_s,
                        "p50": c.predicted_p50_s,
                        "m99": c.measured_p99_s,
                        "p99": c.predicted_p99_s,
                        "old99": by_label[c.label].predicted_p99_s,
                    }
                )
    for (workers, label), found in sorted(rows.items()):
        med = {k: statistics.median(r[k] for r in found) for k in found[0]}
        print(
            f"{workers} {label} ({len(found)} repeats): rate {med['rate']:.1f}/s "
            f"rho {med['rho']:.2f} | p50 measured {med['m50'] * 1e3:.1f}ms "
            f"predicted {med['p50'] * 1e3:.1f}ms | p99 measured {med['m99'] * 1e3:.0f}ms "
            f"predicted {med['p99'] * 1e3:.0f}ms (handler fit {med['old99'] * 1e3:.0f}ms)"
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
