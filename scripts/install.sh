#!/usr/bin/env bash
# Idempotent set-up: OS servers, Toxiproxy, and the Python environment.
# Fast when everything is already there; safe to run again at any time.
set -euo pipefail
cd "$(dirname "$0")/.."

TOXIPROXY_VERSION=v2.12.0
# Deployment checks (docs/deploy.md): the HCL formatter terraform fmt is built on, and helm.
HCLFMT_VERSION=v2.25.0
HELM_VERSION=v3.22.0
CHECKOV_VERSION=3.3.30
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
# The web console's browser tests drive Debian's Chromium (Playwright uses it as is).
[ -x /usr/bin/chromium ] || missing+=(chromium)
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

# --- hclfmt and helm from their Go modules, for the offline deployment checks -------------
# Terraform and OpenTofu cannot be built with `go install` (replace directives in their
# go.mod), so hclfmt is the format check; helm renders the chart for kubernetes-validate.
go_tool() {  # go_tool NAME PACKAGE@VERSION: build into .tools/bin only when missing
  [ -x ".tools/bin/$1" ] && return 0
  command -v go >/dev/null || { echo "Go is needed to build $1: install Go 1.23+" >&2; exit 1; }
  say "go: building $2"
  GOBIN="$PWD/.tools/bin" go install "$2"
}
go_tool hclfmt "github.com/hashicorp/hcl/v2/cmd/hclfmt@$HCLFMT_VERSION"
go_tool helm "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
# --- promtool and Prometheus from their Go module, pinned (docs/observability.md) ---------
# Built without the `builtinassets` tag: the API and rules work, the web UI is not shipped.
go_tool promtool "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION"
# The server is optional: without it the rule tests still run (promtool), the live
# Prometheus test is skipped and a game day that names alerts reports it cannot judge them.
go_tool prometheus "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_VERSION" \
  || say "prometheus did not build: --with-prometheus and game-day alerts are unavailable"

# --- Python: a virtualenv with the project, redone only when the pins change -------------
stamp=$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.homeport-stamp 2>/dev/null)" != "$stamp" ]; then
  say "python: installing the project into .venv"
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c constraints.txt -e '.[dev,deploy,console]'
  echo "$stamp" > .venv/.homeport-stamp
fi
# Bytecode for homeport's own modules, as a regular (wheel) install has: an editable
# install writes none, and with PYTHONDONTWRITEBYTECODE set (as on these machines) every
# worker and gateway start would compile the sources again: about 150 ms of a worker's
# start here (docs/benchmarks.md). Only stale files are recompiled.
.venv/bin/python -m compileall -q -j 0 homeport core router regions chaos loadtest \
  simulation console observe > /dev/null

# --- checkov in a virtualenv of its own ----------------------------------------------------
# It pins packaging<24 (the project pins a newer one) and installs bc-python-hcl2 as the
# module `hcl2`, which would shadow python-hcl2 that tests/deploy parses with.
# A stamp, not `checkov --version`: importing checkov takes seconds.
if [ "$(cat .tools/checkov/.homeport-version 2>/dev/null)" != "$CHECKOV_VERSION" ]; then
  say "python: installing checkov $CHECKOV_VERSION into .tools/checkov"
  rm -rf .tools/checkov
  "$PYTHON" -m venv .tools/checkov
  .tools/checkov/bin/python -m pip install -q --upgrade pip
  .tools/checkov/bin/python -m pip install -q "checkov==$CHECKOV_VERSION"
  ln -sf ../checkov/bin/checkov .tools/bin/checkov
  echo "$CHECKOV_VERSION" > .tools/checkov/.homeport-version
fi

# --- axe-core from npm, for the console's accessibility checks (injected from a file) ---
AXE_VERSION=4.14.1
if [ ! -f .tools/npm/node_modules/axe-core/axe.min.js ] \
  || ! grep -q "\"version\": \"$AXE_VERSION\"" .tools/npm/node_modules/axe-core/package.json; then
  if command -v npm >/dev/null; then
    say "npm: axe-core $AXE_VERSION into .tools/npm"
    mkdir -p .tools/npm
    npm install --silent --no-audit --no-fund --prefix .tools/npm "axe-core@$AXE_VERSION" >/dev/null
  else
    echo "npm not found: the console's accessibility checks will be skipped" >&2
  fi
fi
