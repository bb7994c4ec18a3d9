#!/usr/bin/env bash
# Load tests for `homeport plan validate` (docs/simulation.md, "Validation against load
# tests"): one and two worker processes of concurrency 4, a `work` handler sleeping an
# exponential 50 ms (80 tasks/s per worker), at about 50, 70 and 85 % of capacity
# (10, 14, 17 users of 4 submits/s per worker), each REPS times; then the model's
# prediction beside each repeat. Usage: scripts/plan-validate.sh [OUT] (default
# /tmp/plan-validate); REPS (default 3) and SECONDS_PER_LEVEL (default 90) from the
# environment. Starts and stops its own one-region cluster.
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
for rep in $(seq 1 "$REPS"); do
  for w in 1 2; do
    for u in 10 14 17; do
      users=$((u * w))
      d=$OUT/r$rep/w$w/u$users
      [ -f "$d/export.json" ] && continue
      mkdir -p "$d"
      $HP loadtest run --profile none --users $users --spawn-rate 20 \
        --duration "${SECONDS_PER_LEVEL:-90}s" --topology "$STATE/topology.yaml" \
        --region us-east --engine-workers $w --rate-per-user 4 --batch-weight 0 \
        --single-weight 1 --keys 100000 --zipf-s 0 --durability LOCAL:1 \
        --payload-bytes 64:1 --kind work --slo-p99-ms 1000 --out "$d" > "$d.log" 2>&1 \
        || echo "  (exit $?: a missed submit SLO still writes the export; see $d.log)"
      echo "$(date -u +%T) repeat $rep, $w worker(s), $users users: $(uptime | sed 's/.*load/load/')"
    done
  done
done
for rep in $(seq 1 "$REPS"); do
  for w in 1 2; do
    d=$OUT/r$rep/w$w
    $HP plan validate "$d"/u*/export.json --json > "$d/validate.json"
    $HP plan validate "$d"/u*/export.json
  done
done
# Medians over the repeats, beside the handler-time calibration it replaced.
.venv/bin/python scripts/plan_validate_medians.py "$OUT"
