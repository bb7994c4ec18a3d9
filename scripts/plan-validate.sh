#!/usr/bin/env bash
# Load tests for `homeport plan validate` (docs/simulation.md, "Validation against load
# tests"): one and two worker processes of concurrency 4, a `work` handler sleeping an
# exponential 50 ms, at ρ ≈ 0.5, 0.7 and 0.85 of the capacity *measured* by a 30 s probe
# run per worker count (slots / mean slot hold: the hold is more than the 50 ms sleep),
# each REPS times; then the model's prediction beside each repeat. Users submit about 4/s
# each (Locust constant throughput; the rate per user is set so the level lands on its
# target). Usage: scripts/plan-validate.sh [OUT] (default /tmp/plan-validate); REPS
# (default 3) and SECONDS_PER_LEVEL (default 90) from the environment. Levels already
# measured under OUT are kept, so `REPS=1 ...; REPS=2 ...` runs the second repeat only.
# Every level's load average (uptime) is kept beside its export (LEVEL.load).
# Starts and stops its own one-region cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
HP=.venv/bin/homeport
OUT=${1:-/tmp/plan-validate}
STATE=$OUT/cluster
REPS=${REPS:-3}
mkdir -p "$OUT"
# Plaintext: the figures compare with the runs before the secure default (docs/security.md).
$HP dev up --servers-only --regions 1 --insecure --state-dir "$STATE" > "$OUT/dev-up.log" 2>&1
trap '$HP dev down --state-dir "$STATE" >> "$OUT/dev-up.log" 2>&1' EXIT
export HOMEPORT_CONCURRENCY=4 HOMEPORT_LOADTEST_WORK_MS=50
level() {  # DIR WORKERS USERS RATE_PER_USER SECONDS
  local d=$1
  [ -f "$d/export.json" ] && return 0
  mkdir -p "$d"
  $HP loadtest run --profile none --users "$3" --spawn-rate 20 \
    --duration "$5s" --topology "$STATE/topology.yaml" \
    --region us-east --engine-workers "$2" --rate-per-user "$4" --batch-weight 0 \
    --single-weight 1 --keys 100000 --zipf-s 0 --durability LOCAL:1 \
    --payload-bytes 64:1 --kind work --slo-p99-ms 1000 --out "$d" > "$d.log" 2>&1 \
    || echo "  (exit $?: a missed submit SLO still writes the export; see $d.log)"
  uptime | sed 's/.*load/load/' > "$d.load"
  echo "$(date -u +%T) $d: $2 worker(s), $3 users x $4/s: $(cat "$d.load")"
}
for rep in $(seq 1 "$REPS"); do
  for w in 1 2; do
    # The probe: 10 users of 4/s per worker (ρ 0.5 if a slot were held 50 ms).
    level "$OUT/probe/w$w" "$w" $((10 * w)) 4 30
    while read -r name users per_user; do
      level "$OUT/r$rep/w$w/$name" "$w" "$users" "$per_user" "${SECONDS_PER_LEVEL:-90}"
    done < <(.venv/bin/python scripts/plan_validate_levels.py \
      "$OUT/probe/w$w/export.json" 0.5 0.7 0.85)
  done
done
for rep in $(seq 1 "$REPS"); do
  for w in 1 2; do
    d=$OUT/r$rep/w$w
    $HP plan validate "$d"/rho*/export.json --json > "$d/validate.json"
  done
done
# Medians over the repeats (a markdown table), beside the model with each level's own
# hold, with Poisson arrivals and with FIFO order (docs/simulation.md, "Fidelity").
.venv/bin/python scripts/plan_validate_medians.py "$OUT"
