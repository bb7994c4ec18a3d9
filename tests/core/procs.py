"""Real worker processes for the tests: start, find their admin port, kill, stop."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import insecure_flag

ROOT = Path(__file__).resolve().parents[2]


class WorkerProcess:
    """`python -m core.cli worker --app tests.core.apps:app ...` as a child process."""

    def __init__(
        self,
        tmp: Path,
        name: str,
        redis_url: str,
        pg_dsn: str,
        exec_log: Path,
        *,
        cluster: bool = False,
        partitions: int = 16,
        task_s: float = 0.0,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.stderr_path = tmp / f"{name}.err"
        env = dict(
            os.environ,
            HOMEPORT_TEST_EXEC_LOG=str(exec_log),
            HOMEPORT_TEST_TASK_S=str(task_s),
            PYTHONPATH=str(ROOT),
        )
        cmd = [
            sys.executable,
            "-m",
            "homeport.core.cli",
            "worker",
            "--app",
            "tests.core.apps:app",
            "--region",
            "us-east",
            "--partitions",
            str(partitions),
            "--redis-url",
            redis_url,
            "--pg-dsn",
            pg_dsn,
            "--lease-ttl-s",
            "1.5",
            "--heartbeat-s",
            "0.1",
            "--admin-port",
            "0",
            "--redis-cluster" if cluster else "--redis-single",
            *insecure_flag(),  # the session's credentials, or none (tests/conftest.py)
            *extra,
        ]
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err
            )
        self.port = 0

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def wait_started(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(rb"admin_port=(\d+)", self.stderr_path.read_bytes())
            if m:
                self.port = int(m.group(1))
                return
            if self.proc.poll() is not None:
                pytest.fail(f"worker exited early ({self.proc.returncode}):\n{self.log()}")
            await asyncio.sleep(0.05)
        pytest.fail(f"worker did not start within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace")[-4000:]

    def metric(self, name: str) -> float:
        """Sum of a metric's samples from the worker's /metrics."""
        body = urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5).read()
        total = 0.0
        for line in body.decode().splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM (graceful) and wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"worker ignored SIGTERM for {timeout}s:\n{self.log()}")


def read_exec_log(path: Path) -> list[tuple[int, str, str, int, int]]:
    """Rows (pid, task id, key, seq, deliveries) of every process, in start-time order.

    A line cut short by SIGKILL (no newline) is the last of its file and is skipped.
    """
    rows = []
    for part in path.parent.glob(path.name + ".*"):
        text = part.read_text()
        lines = text.split("\n")
        for line in lines[:-1]:  # the last piece is "" or a line cut short
            ts, pid, tid, key, seq, deliveries = line.split(" ")
            rows.append((int(ts), int(pid), tid, key, int(seq), int(deliveries)))
    rows.sort()
    return [row[1:] for row in rows]
