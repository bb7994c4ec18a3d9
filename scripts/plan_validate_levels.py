"""Users and rate per user for each target ρ, from a probe run's measured capacity.

Usage: .venv/bin/python scripts/plan_validate_levels.py PROBE_EXPORT RHO...
Prints one line per target: `rho50 USERS RATE_PER_USER` (scripts/plan-validate.sh reads
them); `homeport.simulation.validation.level_loads` does the sizing.
"""

from __future__ import annotations

import sys

from homeport.simulation.exports import load_export
from homeport.simulation.validation import level_loads


def main(argv: list[str]) -> None:
    probe = load_export(argv[0])
    for level in level_loads(probe, [float(t) for t in argv[1:]]):
        print(f"{level.name} {level.users} {level.rate_per_user:.4f}")


if __name__ == "__main__":
    main(sys.argv[1:])
