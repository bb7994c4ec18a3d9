#!/usr/bin/env bash
# Idempotent set-up: OS servers, Toxiproxy, and the Python environment.
# Fast when everything is already there; safe to run again at any time.
set -euo pipefail
cd "$(dirname "$0")/.."

TOXIPROXY_VERSION=v2.12.0
# promtool checks and unit-tests deploy/prometheus/; the server runs in
# `homeport dev up --with-prometheus` and the game days. Same module, same pin.
PROMETHEUS_VERSION=v0.316.0
PYTHON=${PYTHON:-python3}
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# --- OS packages: only when a binary is missing ------------------------------------------
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-cli >/dev/null || missing+=(redis-tools)
command -v etcd >/dev/null || missing+=(etcd-server)
command -v etcdctl >/dev/null || missing+=(etcd-client)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  say "apt: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-upgrade "${missing[@]}" >/dev/null
fi

# --- Toxiproxy from its Go module, under names of our own ----------------------------------
mkdir -p .tools/bin
if [ ! -x .tools/bin/toxiproxy-server ] || [ ! -x .tools/bin/toxiproxy-cli ]; then
  command -v go >/dev/null || { echo "Go is needed to build Toxiproxy: install Go 1.23+" >&2; exit 1; }
  say "go: building Toxiproxy $TOXIPROXY_VERSION"
  gobin=$(mktemp -d)
  GOBIN=$gobin go install "github.com/Shopify/toxiproxy/v2/cmd/server@$TOXIPROXY_VERSION"
  GOBIN=$gobin go install "github.com/Shopify/toxiproxy/v2/cmd/cli@$TOXIPROXY_VERSION"
  mv "$gobin/server" .tools/bin/toxiproxy-server
  mv "$gobin/cli" .tools/bin/toxiproxy-cli
  rm -rf "$gobin"
fi

# --- promtool and Prometheus from their Go module, pinned -------------------------------
for tool in promtool prometheus; do
  if [ ! -x ".tools/bin/$tool" ]; then
    command -v go >/dev/null || { echo "Go is needed to build $tool: install Go 1.23+" >&2; exit 1; }
    say "go: building $tool $PROMETHEUS_VERSION (a few minutes)"
    GOBIN="$(pwd)/.tools/bin" go install "github.com/prometheus/prometheus/cmd/$tool@$PROMETHEUS_VERSION"
  fi
done

# --- Python: a virtualenv with the project, redone only when the pins change -------------
stamp=$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.homeport-stamp 2>/dev/null)" != "$stamp" ]; then
  say "python: installing the project into .venv"
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c constraints.txt -e '.[dev,observe]'
  echo "$stamp" > .venv/.homeport-stamp
fi
