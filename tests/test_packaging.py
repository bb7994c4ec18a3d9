"""The wheel users install: one import namespace, and a plain install without the lab.

Built with `pip wheel --no-deps` from this checkout and read as a zip: every module is
under `homeport/` (no generic top-level `core`, `router`, ...), the Lua scripts and SQL
migrations ship, and the requirements without an extra name none of the test lab's
heavy packages.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAB = {"locust", "simpy", "scipy", "matplotlib", "numpy", "gevent"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    made_build = not (ROOT / "build").exists()
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(ROOT)],
        check=True, timeout=300, capture_output=True,
    )  # fmt: skip
    if made_build:  # setuptools builds in the source tree; leave the checkout as it was
        shutil.rmtree(ROOT / "build", ignore_errors=True)
    return next(out.glob("homeport-*.whl"))


def test_wheel_installs_everything_under_one_namespace(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/", 1)[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"homeport"}, tops
    for must in (
        "homeport/core/broker.py",
        "homeport/core/scripts/enqueue.lua",
        "homeport/core/migrations/001_tasks_attempts.sql",
        "homeport/router/proto_gen/scheduler_pb2.py",
        "homeport/chaos/faults/kill.py",
        "homeport/regions/workforce.py",
    ):
        assert must in names, must


def test_plain_install_does_not_pull_the_test_lab(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        lines = z.read(meta).decode().splitlines()
    requires = [
        line.split(":", 1)[1].strip() for line in lines if line.startswith("Requires-Dist:")
    ]
    plain = {
        re.split(r"[\s\[<>=;!~]", r, maxsplit=1)[0].lower() for r in requires if "extra ==" not in r
    }
    assert plain and not plain & LAB, plain & LAB
    extras = {r.split("extra ==")[1].strip().strip("'\"") for r in requires if "extra ==" in r}
    assert {"chaos", "loadtest", "plan", "bench", "dev"} <= extras, extras
