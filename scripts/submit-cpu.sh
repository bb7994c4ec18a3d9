#!/usr/bin/env bash
# A gRPC server's CPU per call under ghz: homeport's gateway (single Submit) or the bare
# grpc.aio echo of `homeport bench gateway` (router/echo.py), the baseline it is held to.
#
#   scripts/submit-cpu.sh gateway|echo TOPOLOGY [CALLS]
#
# TOPOLOGY is a `homeport dev up` topology file (the gateway serves its first region; the
# echo needs none but takes the argument for symmetry). ghz (go install
# github.com/bojand/ghz/cmd/ghz@latest; GHZ=path to override) sends CALLS (default 8000)
# Submits, 50 in flight over 4 connections, after 500 to warm up. The server's CPU is read
# from /proc/PID/stat before and after (user + system, all threads). Prints calls/s and
# CPU µs per call (docs/benchmarks.md, sixteenth session).
set -euo pipefail
kind=${1:?gateway or echo}
topology=${2:?topology file}
calls=${3:-8000}
ghz=${GHZ:-$(command -v ghz || echo "$HOME/go/bin/ghz")}
root=$(cd "$(dirname "$0")/.." && pwd)
py=$root/.venv/bin/python
port=$(( 20000 + RANDOM % 10000 ))
tmp=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$tmp"' EXIT
site=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if [ "$kind" = echo ]; then
  printf '%s\n' 'syntax = "proto3";' 'package homeport.bench;' \
    'import "homeport/v1/scheduler.proto";' \
    'service Echo { rpc Echo(homeport.v1.SubmitRequest) returns (homeport.v1.SubmitRequest); }' \
    > "$tmp/echo.proto"
  "$py" -m homeport.router.echo --listen "127.0.0.1:$port" 2> "$tmp/server.log" &
  call=(--proto "$tmp/echo.proto" --call homeport.bench.Echo.Echo)
else
  region=$("$py" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["regions"][0]["name"])' "$topology")
  "$root/.venv/bin/homeport" gateway --topology "$topology" --region "$region" \
    --listen "127.0.0.1:$port" --admin-port -1 --insecure > "$tmp/server.log" 2>&1 &
  call=(--proto "$root/proto/homeport/v1/scheduler.proto" --call homeport.v1.Scheduler.Submit)
fi
server=$!
for _ in $(seq 1 150); do grep -q listening "$tmp/server.log" && break; sleep 0.1; done
data='{"task":{"partition_key":"k{{.RequestNumber}}","kind":"noop","payload":"eHh4eHh4eHh4eHh4eHh4eA=="}}'
run() { "$ghz" --insecure "${call[@]}" --import-paths "$root/proto,$site" -d "$data" \
  -c 50 --connections 4 -n "$1" "127.0.0.1:$port"; }
run 500 > /dev/null
ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }
before=$(ticks)
rate=$(run "$calls" | awk '/Requests\/sec/ {print $2}')
after=$(ticks)
hz=$(getconf CLK_TCK)
echo "$kind: $rate calls/s, server CPU $(( (after - before) * 1000000 / hz / calls )) µs per call"
