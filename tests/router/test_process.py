"""The gateway as users run it: `homeport gateway` in its own process, driven by the
blocking `Client` and by the `homeport` CLI, then stopped with SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from homeport.core.supervisor import Child
from homeport.router.errors import InvalidRequest

from homeport import Client
from tests.conftest import insecure_flag
from tests.router.conftest import PARTITIONS, REGION

HOMEPORT = [sys.executable, "-m", "homeport"]
START_LIMIT_S = 30.0
_LISTENING = re.compile(r"listening on (\S+)")


@pytest.fixture
def gateway_process(
    redis_url: str, migrated_pg_dsn: str, tmp_path: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    argv = [*HOMEPORT, "gateway", "--region", REGION, "--redis-url", redis_url,
            "--pg-dsn", migrated_pg_dsn, "--partitions", str(PARTITIONS),
            "--listen", "127.0.0.1:0", "--admin-port", "-1", "--token", "t0k3n",
            *insecure_flag()]  # fmt: skip
    gateway = Child.start("gateway", argv, tmp_path / "gateway.log")
    try:
        found = gateway.wait_ready(_LISTENING, START_LIMIT_S, "listening")
        assert found is not None
        yield found[1], gateway.proc
    finally:
        gateway.kill()


def _cli(address: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOMEPORT_GATEWAY": address, "HOMEPORT_TOKEN": "t0k3n"}
    return subprocess.run([*HOMEPORT, *args], env=env, capture_output=True, text=True, timeout=60)


def test_gateway_process_serves_sdk_and_cli_and_stops_gracefully(
    gateway_process: tuple[str, subprocess.Popen[bytes]],
) -> None:
    address, proc = gateway_process
    with Client(address, token="t0k3n") as client:
        done = client.submit("noop", "cli-key", b"x", id="proc-task-1")
        assert done.task_id == "proc-task-1"
        with pytest.raises(InvalidRequest):
            client.submit("noop", "")
    submitted = _cli(address, "submit", "noop", "cli-key", "--id", "proc-task-2", "--json")
    assert submitted.returncode == 0, submitted.stderr
    assert json.loads(submitted.stdout)["task_id"] == "proc-task-2"
    refused = _cli(address, "submit", "bad kind", "k")
    assert refused.returncode == 1
    assert "field task.kind" in refused.stderr
    missing = _cli(address, "task", "get", "nope", "--json")
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr
    cancelled = _cli(address, "task", "cancel", "proc-task-2", "--key", "cli-key", "--json")
    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout)["cancelled"] is True
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
