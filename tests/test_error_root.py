"""One exception root: every error class homeport defines hangs under HomeportError, and
the tree in homeport/errors.py names each public one.

The modules are imported in a child interpreter: the load-test modules import Locust,
whose gevent monkey-patching must not run inside the test process. Modules of peer
queues whose packages are not installed (the `bench` extra) are skipped."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import homeport.errors

WALK = """
try:  # Locust's modules need gevent's patching first, as locust itself does
    from gevent import monkey; monkey.patch_all()
except ImportError:
    pass
import importlib, inspect, json, pkgutil
from homeport.errors import HomeportError
names = ["homeport.cli", "homeport.errors"]
for package in %r:
    root = importlib.import_module("homeport." + package)
    names.append(root.__name__)
    for info in pkgutil.walk_packages(root.__path__, root.__name__ + "."):
        if ".proto_gen" not in info.name and not info.name.endswith("__main__"):
            names.append(info.name)
found = {}
for name in names:
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:  # a peer queue of the bench extra, not installed
        if (exc.name or "").startswith("homeport"):
            raise
        continue
    for attr, value in vars(module).items():
        if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == name:
            found[name + "." + attr] = issubclass(value, HomeportError)
print(json.dumps(found))
"""
PACKAGES = ("core", "router", "regions", "chaos", "loadtest", "simulation", "console", "observe")


@pytest.fixture(scope="module")
def errors() -> dict[str, bool]:
    """Every exception class defined in a homeport module -> is it a HomeportError?"""
    out = subprocess.run(
        [sys.executable, "-c", WALK % (PACKAGES,)], capture_output=True, text=True, check=True
    )
    found: dict[str, bool] = json.loads(out.stdout.strip().splitlines()[-1])
    return found


def test_every_error_homeport_defines_is_a_homeport_error(errors: dict[str, bool]) -> None:
    assert len(errors) > 30, sorted(errors)  # the walk really found the packages' errors
    # A private class (leading underscore) is control flow inside one module, never seen
    # by a caller: the servicer's _DeadlineSpent must *not* be caught as a HomeportError.
    strays = sorted(n for n, under in errors.items() if not under and "._" not in n)
    assert strays == [], f"not under HomeportError: {strays}"


def test_the_tree_in_the_root_docstring_names_every_public_error(errors: dict[str, bool]) -> None:
    tree = homeport.errors.__doc__ or ""
    public = {name.rsplit(".", 1)[1] for name in errors}
    missing = sorted(n for n in public if not n.startswith("_") and n not in tree)
    assert missing == [], f"add to the tree in homeport/errors.py: {missing}"
