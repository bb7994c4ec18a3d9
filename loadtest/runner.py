"""Running Locust headless as child processes and judging the result against SLOs.

Locust (gevent) never runs in the caller's process: `run_locust` starts
`python -m locust -f loadtest/locustfile.py --headless`, alone or as a master with
`workers` worker processes (distributed mode on one machine; docs/loadtest.md shows the
same flags across machines), waits for it within a bound, and prints a progress line
every few seconds from the history CSV Locust writes each second.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from homeport.core.supervisor import Child
from homeport.loadtest.errors import RunError
from homeport.loadtest.locuststats import AGGREGATED, RequestStats, read_history, read_stats
from homeport.loadtest.workload import Workload

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
ROOT = LOCUSTFILE.parents[1]
EXTRA_TIME_S = 60.0  # beyond the shape's duration before a stuck Locust is killed
PROGRESS_EVERY_S = 5.0


@dataclass(frozen=True)
class RunConfig:
    """One Locust run: where, how much, how long, and with which workload."""

    gateway: str
    out_dir: Path
    profile: str = "steady"
    users: int = 10
    duration_s: float = 60.0
    spawn_rate: float = 10.0
    workers: int = 0  # Locust worker processes; 0 = one standalone process
    run_id: str = "lt"
    workload: Workload = field(default_factory=Workload)

    @property
    def csv_prefix(self) -> Path:
        return self.out_dir / "locust"

    @property
    def html(self) -> Path:
        return self.out_dir / "locust.html"

    def env(self) -> dict[str, str]:
        env = dict(os.environ, **self.workload.to_env())
        env.update(
            HOMEPORT_LOADTEST_PROFILE=self.profile,
            HOMEPORT_LOADTEST_USERS=str(self.users),
            HOMEPORT_LOADTEST_DURATION_S=str(self.duration_s),
            HOMEPORT_LOADTEST_SPAWN_RATE=str(self.spawn_rate),
            HOMEPORT_LOADTEST_RUN_ID=self.run_id,
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        )
        return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def locust_commands(cfg: RunConfig) -> list[list[str]]:
    """The command lines: [standalone] or [master, worker 1, ..., worker N]."""
    base = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--loglevel", "WARNING"]
    main = [
        *base,
        "--headless",
        "--host",
        cfg.gateway,
        "--csv",
        str(cfg.csv_prefix),
        "--html",
        str(cfg.html),
        "--only-summary",
        "--stop-timeout",
        "5",
        "--exit-code-on-error",
        "0",
    ]
    if cfg.profile == "none":
        main += ["-u", str(cfg.users), "-r", str(cfg.spawn_rate), "-t", f"{cfg.duration_s:.0f}s"]
    if not cfg.workers:
        return [main]
    port = _free_port()
    master = [
        *main,
        "--master",
        "--master-bind-host",
        "127.0.0.1",
        "--master-bind-port",
        str(port),
        "--expect-workers",
        str(cfg.workers),
        "--expect-workers-max-wait",
        "60",
    ]
    worker = [*base, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)]
    return [master] + [worker] * cfg.workers


def _progress_line(cfg: RunConfig, began: float) -> str:
    history = read_history(cfg.csv_prefix)
    if not history:
        return f"t={time.monotonic() - began:4.0f}s starting"
    p = history[-1]
    return (
        f"t={time.monotonic() - began:4.0f}s users={p.users} rps={p.rps:,.0f} "
        f"requests={p.requests:,} failures={p.failures:,} p99={p.p99_ms:.0f}ms"
    )


def run_locust(cfg: RunConfig, progress: Callable[[str], None] = lambda _l: None) -> int:
    """Run Locust to the end of its shape; returns its exit code. Logs go to out_dir."""
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    procs: list[Child] = []
    env = cfg.env()
    try:
        for i, cmd in enumerate(locust_commands(cfg)):
            name = "locust" if i == 0 else f"locust-worker-{i}"
            procs.append(Child.start(name, cmd, cfg.out_dir / f"{name}.log", env=env, cwd=ROOT,
                                     append=False))  # fmt: skip
        began = time.monotonic()
        limit = cfg.duration_s + EXTRA_TIME_S + (60 if cfg.workers else 0)
        next_report = began + PROGRESS_EVERY_S
        while procs[0].running:
            now = time.monotonic()
            if now - began > limit:
                raise RunError(
                    f"Locust still running {limit:.0f}s after start; killed it "
                    f"(log: {cfg.out_dir / 'locust.log'})"
                )
            if now >= next_report:
                progress(_progress_line(cfg, began))
                next_report += PROGRESS_EVERY_S
            time.sleep(0.2)  # watching a child process; the loop is bounded by `limit`
        for worker in procs[1:]:
            worker.proc.wait(30)
        return procs[0].proc.returncode
    finally:
        for proc in procs:
            if proc.running:
                proc.kill()


@dataclass(frozen=True)
class Slo:
    """Service-level objectives a run must meet. The defaults suit a loaded loopback run."""

    # Largest p99 of single Submit calls, milliseconds. Default 50.
    p99_submit_ms: float = 50.0
    # Largest share of failed requests (all RPCs). Default 0.001 (0.1 %). Zero = none.
    error_rate: float = 0.001


@dataclass(frozen=True)
class Verdict:
    name: str
    measured: float
    limit: float
    ok: bool


@dataclass(frozen=True)
class Summary:
    """What a run did and whether it met its SLOs."""

    profile: str
    users: int
    duration_s: float
    requests: dict[str, dict[str, Any]]
    tasks_accepted: int
    verdicts: list[Verdict]

    @property
    def ok(self) -> bool:
        return all(v.ok for v in self.verdicts)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def accepted_tasks(stats: dict[str, RequestStats], batch_size: int) -> int:
    """Tasks the gateway acknowledged: successful Submits plus tasks of whole batches."""
    single = stats.get("Submit")
    batch = stats.get("SubmitBatch")
    total = single.requests - single.failures if single else 0
    if batch:
        total += (batch.requests - batch.failures) * batch_size
    return total


def summarize(cfg: RunConfig, slo: Slo) -> Summary:
    stats = read_stats(cfg.csv_prefix)
    agg = stats[AGGREGATED]
    submit = stats.get("Submit", agg)
    verdicts = [
        Verdict(
            f"p99 {submit.name} latency (ms)",
            submit.p99_ms,
            slo.p99_submit_ms,
            submit.p99_ms <= slo.p99_submit_ms,
        ),
        Verdict("error rate", agg.error_rate, slo.error_rate, agg.error_rate <= slo.error_rate),
    ]
    if agg.requests == 0:
        verdicts.append(Verdict("requests made", 0, 1, False))
    return Summary(
        profile=cfg.profile, users=cfg.users, duration_s=cfg.duration_s,
        requests={name: asdict(s) for name, s in stats.items()},
        tasks_accepted=accepted_tasks(stats, cfg.workload.batch_size),
        verdicts=verdicts,
    )  # fmt: skip
