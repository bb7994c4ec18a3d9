"""The system under a load test, started as processes: a gateway and workers of one region.

`LocalStack` runs `homeport db migrate`, one `homeport gateway` and `workers` ×
`homeport worker --app loadtest.apps:app` against a region's Redis primary and PostgreSQL
database (given, or those of a local cluster), each in its own session with its log in
`log_dir`, and stops them (SIGTERM, then SIGKILL after a bound) in reverse order. The
processes dial Redis directly, not through Toxiproxy: a load test measures the system,
not the proxy (chaos scenarios add the proxy).
"""

from __future__ import annotations

import os
import re
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from homeport.core.supervisor import Child, ChildFailed, stop_all
from homeport.loadtest.errors import StackError

START_LIMIT_S = 60.0
STOP_LIMIT_S = 20.0
_LISTENING = re.compile(r"listening on (\S+)")
_WORKER_UP = re.compile(r"admin_port=(-?\d+)")
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class LocalStack:
    """A gateway and worker processes serving `region` from one Redis and one database."""

    redis_url: str
    pg_dsn: str
    log_dir: Path
    region: str = "us-east"
    partitions: int = 16
    workers: int = 1
    env: dict[str, str] = field(default_factory=dict)
    gateway: str = ""
    worker_admin_ports: list[int] = field(default_factory=list)
    _children: list[Child] = field(default_factory=list)

    def _spawn(self, name: str, args: list[str]) -> Child:
        env = dict(os.environ, **self.env)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        argv = [sys.executable, "-m", "homeport", *args]
        child = Child.start(
            name, argv, self.log_dir / f"{name}.log", env=env, cwd=ROOT, append=False
        )
        self._children.append(child)
        return child

    @staticmethod
    def _wait_line(child: Child, pattern: re.Pattern[str]) -> re.Match[str]:
        try:
            found = child.wait_ready(pattern, START_LIMIT_S, "up")
        except ChildFailed as exc:
            raise StackError(str(exc)) from None
        assert found is not None
        return found

    def _engine_args(self, admin_port: str = "-1") -> list[str]:
        return [
            "--region",
            self.region,
            "--partitions",
            str(self.partitions),
            "--redis-url",
            self.redis_url,
            "--pg-dsn",
            self.pg_dsn,
            "--admin-port",
            admin_port,
        ]

    def start(self) -> str:
        """Start everything; returns the gateway's address. Stops what started on failure."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            migrate = self._spawn("migrate", ["db", "migrate", "--pg-dsn", self.pg_dsn])
            if migrate.proc.wait(START_LIMIT_S) != 0:
                raise StackError(f"db migrate failed:\n{migrate.tail()}")
            self._children.remove(migrate)
            gateway = self._spawn(
                "gateway",
                ["gateway", *self._engine_args(), "--listen", "127.0.0.1:0", "--insecure"],
            )
            workers = [
                self._spawn(
                    f"worker-{i}",
                    # An admin port for /metrics: the export reads the slot hold times there.
                    [
                        "worker",
                        "--app",
                        "homeport.loadtest.apps:app",
                        *self._engine_args("0"),
                        "--insecure",
                    ],
                )
                for i in range(1, self.workers + 1)
            ]
            self.gateway = self._wait_line(gateway, _LISTENING)[1]
            self.worker_admin_ports = [int(self._wait_line(w, _WORKER_UP)[1]) for w in workers]
        except BaseException:
            self.stop()
            raise
        return self.gateway

    def worker_metrics(self) -> list[str]:
        """Each live worker's /metrics text (Prometheus format), for the export."""
        texts = []
        for port in self.worker_admin_ports:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as got:
                texts.append(got.read().decode())
        return texts

    def stop(self) -> None:
        """SIGTERM each process (workers drain gracefully), newest first; SIGKILL stragglers."""
        stop_all(self._children, STOP_LIMIT_S)
        self._children.clear()

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
