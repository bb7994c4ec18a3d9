"""Real worker processes for the tests: start, find their admin port, kill, stop."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import urllib.request
from pathlib import Path

import pytest
from homeport.core.supervisor import Child, ChildFailed

from tests.conftest import insecure_flag

ROOT = Path(__file__).resolve().parents[2]
_STARTED = re.compile(r"admin_port=(\d+)")


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
        self.child = Child.start(name, cmd, self.stderr_path, env=env, cwd=ROOT, append=False)
        self.proc = self.child.proc
        self.port = 0

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def wait_started(self, timeout: float = 30) -> None:
        try:
            found = await asyncio.to_thread(self.child.wait_ready, _STARTED, timeout, "started")
        except ChildFailed as exc:
            pytest.fail(str(exc))
        assert found is not None
        self.port = int(found[1])

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
        self.child.kill()

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM (graceful) and wait; returns the exit code."""
        code = self.child.stop(timeout)
        if self.child.killed:
            pytest.fail(f"worker ignored SIGTERM for {timeout}s:\n{self.log()}")
        return code


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
