"""`homeport bench drain` end to end on a few tasks, as a user runs it against a plain
(insecure) one-region cluster, with and without a record store. A smoke test of the
harness, not a speed test."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from homeport.regions.devcluster import DevCluster
from homeport.regions.devplan import ClusterSpec

from tests.conftest import _start


@pytest.fixture(scope="module")
def plain(state_dir_factory: list[Path]) -> Iterator[DevCluster]:
    """A bench takes plain URLs (docs/benchmarks.md): servers only, no credentials."""
    spec = dataclasses.replace(ClusterSpec.default(1, partitions=4), insecure=True)
    yield from _start(spec, "drain-bench", state_dir_factory)


@pytest.mark.parametrize("records", [False, True])
def test_bench_drain_runs_with_and_without_a_record_store(plain: DevCluster, records: bool) -> None:
    region = plain.topology.region("us-east")
    assert region.redis.primary is not None
    argv = [sys.executable, "-m", "homeport", "bench", "drain",
            "--redis-url", f"redis://{region.redis.primary}/0", "--tasks", "300", "--runs", "1",
            "--partitions", "4", "--kinds", "unordered",
            *(["--pg-dsn", region.postgres] if records else [])]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert f"records {'on' if records else 'off'}" in done.stdout
    found = re.search(r"median of 1 \[unordered\]: start ([\d.]+) s, drain ([\d,]+) tasks/s",
                      done.stdout)  # fmt: skip
    assert found is not None, done.stdout
    assert float(found.group(1)) > 0 and int(found.group(2).replace(",", "")) > 0
