"""`LoadMeter`: the agent's loop that measures the load of every home it runs workers for,
publishes it for the capacity check (`regions.capacity`), and picks up scale orders.

Every `interval_s` it reads each live worker's /metrics (the port the worker printed
in its log at start), sums `homeport_slot_hold_seconds` count and sum over the home's
workers, and from the change over the last `window_s` derives the rate tasks finished
at and their mean slot hold time. A restarted worker starts its counters from zero:
its first reading counts whole, so the totals never step back. The report goes to etcd
whether or not the rate is known (a parked group reports its worker count, which is
what the check needs of a standby).

Each report also carries the median boot seconds of this agent's live workers (their
`homeport_worker_boot_seconds`: spawn to serving, parked time excluded), the median of
their start (`homeport_worker_start_seconds`: the part after a parked or prepared
worker's wait) and of that start's CPU seconds, the workers' membership heartbeat and
the home's prepared workers, from which the capacity check derives how long a scale-up
of this region takes (`capacity.scale_delay`, `capacity.prepared_delay`).

The fetch hold is measured the same way, from the workers' running totals of the
fetch budget (`homeport_fetch_budget_held_seconds` over
`homeport_fetch_budget_released`: the mean time from reading an entry to releasing it,
its record write and ack included); with the budget (`homeport_fetch_budget`) it tells
the capacity check when the budget, not the slots, bounds a worker
(`LoadReport.service_hold_s`).

Concurrency is read from the workers' `homeport_worker_slots`; parked workers do not
serve /metrics until promoted, so for them it is the agent's own `Settings` (the
workers inherit the agent's environment).
"""

from __future__ import annotations

import logging
import re
import statistics
import time
from collections import deque
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field, replace
from pathlib import Path
from typing import Any

import aetcd
import aiohttp
from homeport.core.loop import Loop
from homeport.core.metrics import Metrics
from homeport.regions.capacity import LoadReport, ScaleOrder, publish_report, read_orders
from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger(__name__)
SCRAPE_TIMEOUT_S = 1.0


@dataclass
class _Totals:
    """One home's running totals (count, seconds), kept monotonic: of slot holds, or of
    fetch-budget releases and the unit-seconds held."""

    last: dict[str, tuple[float, float]] = field(default_factory=dict)  # worker id -> raw
    count: float = 0.0
    seconds: float = 0.0
    window: deque[tuple[float, float, float]] = field(default_factory=deque)

    def add(self, worker: str, count: float, seconds: float) -> None:
        before = self.last.get(worker, (0.0, 0.0))
        if count < before[0]:  # the same id restarted: a fresh counter
            before = (0.0, 0.0)
        self.count += count - before[0]
        self.seconds += seconds - before[1]
        self.last[worker] = (count, seconds)

    def advance(self, now: float, window_s: float) -> tuple[float, float, float]:
        """Note the totals at `now`; return the oldest (at, count, seconds) of the window."""
        self.window.append((now, self.count, self.seconds))
        while self.window[0][0] < now - window_s:
            self.window.popleft()
        return self.window[0]


@dataclass(frozen=True)
class WorkerSample:
    """What the load meter reads from one worker's /metrics text."""

    holds: float = 0.0  # slot holds (count) and their total seconds
    hold_s: float = 0.0
    slots: int = 0
    boot: tuple[float, float] | None = None  # (boot, start) s; None: not started by an agent
    start_cpu: float = 0.0  # CPU seconds of that start
    budget: int = 0  # the fetch budget and its running totals (core.runtime)
    released: float = 0.0
    budget_held_s: float = 0.0


def parse_worker_metrics(text: str) -> WorkerSample:
    """One worker's `WorkerSample` from its /metrics text."""
    found: dict[str, float] = {}
    holds = hold_s = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "homeport_slot_hold_seconds_count":
                holds += sample.value
            elif sample.name == "homeport_slot_hold_seconds_sum":
                hold_s += sample.value
            else:
                found[sample.name] = max(found.get(sample.name, 0.0), sample.value)
    boot = found.get("homeport_worker_boot_seconds")
    return WorkerSample(
        holds=holds,
        hold_s=hold_s,
        slots=int(found.get("homeport_worker_slots", 0)),
        boot=None if boot is None else (boot, found.get("homeport_worker_start_seconds", 0.0)),
        start_cpu=found.get("homeport_worker_start_cpu_seconds", 0.0),
        budget=int(found.get("homeport_fetch_budget", 0)),
        released=found.get("homeport_fetch_budget_released", 0.0),
        budget_held_s=found.get("homeport_fetch_budget_held_seconds", 0.0),
    )


@dataclass(eq=False)
class LoadMeter(Loop):
    """See the module docstring. `rows` is the workforce's worker table
    (`Workforce.rows`); `on_orders` receives every scale order read."""

    name = "load-meter"

    etcd: aetcd.Client
    prefix: str
    region: str
    rows: Callable[[], list[dict[str, Any]]]
    metrics: Metrics
    _: KW_ONLY
    concurrency: int
    on_orders: Callable[[dict[str, ScaleOrder]], None]
    interval_s: float = 2.0
    window_s: float = 30.0
    heartbeat_s: float = 0.0  # the workers' membership heartbeat (their Settings)
    reserves: Callable[[str], int] = lambda home: 0  # `Workforce.reserves`

    def __post_init__(self) -> None:
        super().__init__(self.interval_s, self.metrics)
        self.reports: dict[str, LoadReport] = {}
        self._totals: dict[str, _Totals] = {}
        self._fetch: dict[str, _Totals] = {}
        self._ports: dict[str, int] = {}
        self._boots: dict[str, tuple[float, float, float]] = {}  # id -> boot, start, CPU s
        self._session: aiohttp.ClientSession | None = None

    def _port(self, worker_id: str, log_path: str) -> int | None:
        if worker_id not in self._ports:
            try:
                text = Path(log_path).read_text(errors="replace")
            except OSError:
                return None
            found = re.findall(rf"worker {re.escape(worker_id)} \S+ admin_port=(\d+)", text)
            if not found:
                return None
            self._ports[worker_id] = int(found[-1])
        return self._ports[worker_id]

    async def _scrape(self, port: int) -> str:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT_S)
            )
        async with self._session.get(f"http://127.0.0.1:{port}/metrics") as got:
            return await got.text()

    async def measure(self, now: float) -> list[LoadReport]:
        """Read every live worker once; one report per home this agent runs workers for."""
        homes: dict[str, list[dict[str, Any]]] = {}
        for row in self.rows():
            if row["alive"]:
                homes.setdefault(row["home"], []).append(row)
        reports = []
        for home, rows in homes.items():
            totals = self._totals.setdefault(home, _Totals())
            fetch = self._fetch.setdefault(home, _Totals())
            parked = any(r["parked"] for r in rows)
            slots = budget = 0
            for row in [] if parked else rows:
                port = self._port(row["id"], row["log"])
                if port is None:
                    continue
                try:
                    got = parse_worker_metrics(await self._scrape(port))
                except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                    log.debug("load meter: %s unreadable: %s", row["id"], exc)
                    continue
                if got.boot is not None:
                    self._boots[row["id"]] = (*got.boot, got.start_cpu)
                totals.add(row["id"], got.holds, got.hold_s)
                fetch.add(row["id"], got.released, got.budget_held_s)
                slots = max(slots, got.slots)
                budget = max(budget, got.budget)
            t0, c0, s0 = totals.advance(now, self.window_s)
            done = totals.count - c0
            span = now - t0
            _, f0, h0 = fetch.advance(now, self.window_s)
            released = fetch.count - f0
            reports.append(
                LoadReport(
                    home=home,
                    region=self.region,
                    rate_per_s=done / span if span > 0 else 0.0,
                    hold_mean_s=(totals.seconds - s0) / done if done > 0 else 0.0,
                    workers=len(rows),
                    concurrency=slots or self.concurrency,
                    fetch_hold_s=(fetch.seconds - h0) / released if released > 0 else 0.0,
                    fetch_budget=budget,
                    parked=parked,
                    window_s=span,
                    at=now,
                )
            )
        # Every home's report carries the region's boot figure: a parked group's workers
        # export none until promoted, yet theirs is the start a scale-up will wait for.
        alive = {r["id"] for r in self.rows() if r["alive"]}
        self._boots = {w: b for w, b in self._boots.items() if w in alive}  # no dead ids kept
        live = list(self._boots.values())
        boot_s, start_s, start_cpu_s = (
            (statistics.median(b[i] for b in live) for i in range(3)) if live else (0.0,) * 3
        )
        return [
            replace(
                r,
                boot_s=boot_s,
                start_s=start_s,
                start_cpu_s=start_cpu_s,
                heartbeat_s=self.heartbeat_s,
                reserves=self.reserves(r.home),
            )  # fmt: skip
            for r in reports
        ]

    async def run_once(self) -> float | None:
        for report in await self.measure(time.time()):
            # A report over a zero-length window (the first reading) carries no rate
            # yet; publishing it would erase the last useful one of a restarted agent.
            if report.window_s > 0 or report.parked:
                await publish_report(self.etcd, self.prefix, report)
            self.reports[report.home] = report
        self.on_orders(await read_orders(self.etcd, self.prefix))
        return None

    async def stop(self) -> None:
        await super().stop()
        if self._session is not None:
            await self._session.close()
            self._session = None
