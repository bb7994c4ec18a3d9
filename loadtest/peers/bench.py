"""The peer benchmark driver: for each contender, three throughput runs and one latency run.

Throughput run (repeated `runs` times; median, min and max reported):
1. flush the bench's Redis; enqueue N no-op tasks through the contender's client, timed
   (enqueue rate = N / enqueue time); no worker is running yet;
2. start one worker process; the no-op handler's `mark` notes the first and the N-th
   handler start (run rate = N / that span, so start-up is not counted; start = the
   worker's spawn to its first handler start: interpreter, imports, connecting, taking
   work);
3. end-to-end tasks/s = N / (enqueue time + run span): "N submitted, then run".

Latency run (light load): a worker idles until a warm-up probe shows it consumes, then
`latency_tasks` tasks are enqueued one at a time at `latency_rate`/s, each stamped with
`time.time()` just before its enqueue call; the handler records `now - stamp` at start.

Every contender uses the same Redis server (started here, no persistence, no replicas,
flushed between runs) and the raw Redis streams contender is measured in the same run, so
each figure stands beside the floor of the machine at that moment.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import redis
from homeport.core.supervisor import Child, ChildFailed
from homeport.loadtest.errors import StackError
from homeport.loadtest.peers.base import Contender

ROOT = Path(__file__).resolve().parents[2]
WORKER_LIMIT_S = 60.0  # start-up of a worker, or silence after the last enqueue


@dataclass
class PeerResult:
    """One contender's figures (rates in tasks/s, latencies in ms)."""

    name: str
    version: str
    changed: list[str]
    tasks: int
    enqueue: list[float] = field(default_factory=list)
    run: list[float] = field(default_factory=list)
    end_to_end: list[float] = field(default_factory=list)
    start_s: list[float] = field(default_factory=list)  # worker spawn → first handler start
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    latency_samples: int = 0
    error: str = ""

    @staticmethod
    def _med(values: list[float]) -> float:
        return statistics.median(values) if values else 0.0

    @property
    def e2e_median(self) -> float:
        return self._med(self.end_to_end)

    @property
    def enqueue_median(self) -> float:
        return self._med(self.enqueue)

    @property
    def run_median(self) -> float:
        return self._med(self.run)

    @property
    def start_median(self) -> float:
        return self._med(self.start_s)


def _wait_file(
    path: Path, worker: Child, limit_s: float, nudge: Callable[[], None] | None = None
) -> None:
    """Until the worker writes `path` (`nudge`, when given, runs between two looks)."""

    def written() -> bool:
        if nudge is not None:
            nudge()
        return path.exists()

    try:
        worker.wait_ready(written, limit_s, f"done ({path.name} not written)")
    except ChildFailed as exc:
        raise StackError(str(exc)) from None


@dataclass
class Bench:
    redis_url: str
    workdir: Path
    progress: Callable[[str], None] = print

    def _env(self, mode: str, n: int, out: Path) -> dict[str, str]:
        return dict(
            os.environ,
            HP_BENCH_REDIS=self.redis_url,
            HP_BENCH_MODE=mode,
            HP_BENCH_N=str(n),
            HP_BENCH_OUT=str(out),
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        )

    def _flush(self) -> None:
        client = redis.Redis.from_url(self.redis_url)
        client.flushall()
        client.close()

    def _worker(self, c: Contender, env: dict[str, str], slug: str) -> Child:
        """One contender's worker, in its own session, its output in `<slug>.log`."""
        return Child.start(f"{c.name} worker", c.worker_cmd(), self.workdir / f"{slug}.log",
                           env=env, cwd=ROOT)  # fmt: skip

    def throughput(self, c: Contender, n: int, slug: str, run: int) -> tuple[float, float, float]:
        """(enqueue seconds, run seconds, worker start seconds) of one run."""
        self._flush()
        began = time.perf_counter()
        c.submit(n)
        enqueue_s = time.perf_counter() - began
        out = self.workdir / f"{slug}-tp{run}.json"
        out.unlink(missing_ok=True)  # an earlier bench's file in the same --out is no result
        spawned = time.time()
        worker = self._worker(c, self._env("throughput", n, out), slug)
        try:
            _wait_file(out, worker, WORKER_LIMIT_S + n / 50)
        finally:
            worker.stop()
        got = json.loads(out.read_text())
        return enqueue_s, max(1e-9, got["last"] - got["first"]), got["first"] - spawned

    def latency(self, c: Contender, m: int, rate: float, slug: str) -> list[float]:
        self._flush()
        out = self.workdir / f"{slug}-lat.json"
        ready = Path(f"{out}.ready")
        for stale in (out, ready):
            stale.unlink(missing_ok=True)
        worker = self._worker(c, self._env("latency", m, out), slug)
        try:
            _wait_file(ready, worker, WORKER_LIMIT_S, nudge=c.probe)
            time.sleep(0.5)  # let the probes' stragglers drain before stamped tasks start
            c.submit(m, stamped=True, rate=rate)
            _wait_file(out, worker, WORKER_LIMIT_S)
        finally:
            worker.stop()
        return [float(v) for v in json.loads(out.read_text())["latencies"]]

    def measure(
        self, c: Contender, n: int, runs: int, latency_tasks: int, latency_rate: float
    ) -> PeerResult:
        slug = "".join(ch if ch.isalnum() else "-" for ch in c.name.lower())
        result = PeerResult(c.name, c.version(), list(c.changed), n)
        c.setup()
        try:
            for run in range(1, runs + 1):
                enq, ran, start = self.throughput(c, n, slug, run)
                result.start_s.append(start)
                result.enqueue.append(n / enq)
                result.run.append(n / ran)
                result.end_to_end.append(n / (enq + ran))
                self.progress(
                    f"{c.name} run {run}/{runs}: enqueue {n / enq:,.0f}/s, "
                    f"run {n / ran:,.0f}/s, end to end {n / (enq + ran):,.0f}/s, "
                    f"worker start {start:.2f} s"
                )
            lat = sorted(self.latency(c, latency_tasks, latency_rate, slug))
            cuts = statistics.quantiles(lat, n=100, method="inclusive")
            result.latency_p50_ms = statistics.median(lat) * 1000
            result.latency_p99_ms = cuts[98] * 1000
            result.latency_samples = len(lat)
            self.progress(
                f"{c.name} latency: p50 {result.latency_p50_ms:.2f} ms, "
                f"p99 {result.latency_p99_ms:.2f} ms"
            )
        except Exception as exc:  # one contender failing must not sink the others
            result.error = f"{type(exc).__name__}: {exc}"
            self.progress(f"{c.name} failed: {result.error}")
        finally:
            c.teardown()
        return result


def results_json(results: list[PeerResult]) -> list[dict[str, object]]:
    return [
        {
            **asdict(r),
            "e2e_median": r.e2e_median,
            "enqueue_median": r.enqueue_median,
            "run_median": r.run_median,
            "start_median": r.start_median,
        }
        for r in results
    ]
