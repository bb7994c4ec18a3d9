#!/usr/bin/env bash
# mypy over the installed layout: the top-level folders are the `homeport.*` subpackages
# (setuptools package-dir), which mypy cannot map from paths, so a tree of symlinks in
# .typecheck/ gives it the import namespace that `pip install` gives Python.
set -euo pipefail
cd "$(dirname "$0")/.."
root=.typecheck/homeport
rm -rf .typecheck && mkdir -p "$root"
for f in homeport/*.py homeport/py.typed; do [ -e "$f" ] && ln -s "$PWD/$f" "$root/"; done
for pkg in core router regions chaos loadtest simulation console observe; do ln -s "$PWD/$pkg" "$root/$pkg"; done
cd .typecheck && MYPYPATH=$PWD exec ../.venv/bin/mypy --config-file ../pyproject.toml --cache-dir ../.mypy_cache "$@"
