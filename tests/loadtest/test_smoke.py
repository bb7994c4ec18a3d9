"""Headless Locust runs against a real gateway and worker on the local cluster."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from homeport.loadtest.export import build_export, slot_hold, window_s, write_export
from homeport.loadtest.locuststats import AGGREGATED, read_history, read_stats
from homeport.loadtest.records import read_run
from homeport.loadtest.runner import RunConfig, Slo, run_locust, summarize
from homeport.loadtest.stack import LocalStack
from homeport.loadtest.workload import Workload
from homeport.simulation.exports import load_export

WORKLOAD = Workload(rate_per_user=10, batch_size=20, keys=500)


def test_fifteen_second_steady_run_has_no_failures_and_matches_the_records(
    stack: LocalStack, tmp_path: Path
) -> None:
    cfg = RunConfig(
        stack.gateway,
        tmp_path / "out",
        "steady",
        users=5,
        duration_s=15,
        spawn_rate=5,
        run_id="smoke1",
        workload=WORKLOAD,
    )
    assert run_locust(cfg) == 0, (tmp_path / "out" / "locust.log").read_text()[-3000:]
    stats = read_stats(cfg.csv_prefix)
    agg = stats[AGGREGATED]
    assert agg.requests >= 300, f"only {agg.requests} requests in 15 s at 5 users x 10/s"
    assert agg.failures == 0, (tmp_path / "out" / "locust_failures.csv").read_text()
    assert {"Submit", "SubmitBatch"} <= set(stats)
    assert cfg.html.stat().st_size > 0
    summary = summarize(cfg, Slo(p99_submit_ms=5000, error_rate=0))  # shared, loaded cores
    assert summary.ok, summary.verdicts
    expected = stats["Submit"].requests + stats["SubmitBatch"].requests * WORKLOAD.batch_size
    assert summary.tasks_accepted == expected

    records = asyncio.run(read_run(stack.pg_dsn, cfg.run_id, expected, wait_s=60))
    # Calls still in flight when the shape ends are acknowledged by the gateway but never
    # reported by Locust (it stops its users mid-call): at most one call per user.
    in_flight = 5 * WORKLOAD.batch_size
    assert expected <= records.tasks <= expected + in_flight, (
        f"PostgreSQL records {records.tasks} tasks, Locust reported {expected} accepted"
    )
    assert records.finished == records.tasks, "not every accepted task finished"

    doc = build_export(
        duration_s=window_s(read_history(cfg.csv_prefix), cfg.duration_s),
        tasks=summary.tasks_accepted,
        rows=records.rows,
        workers=1,
        concurrency=1024,
        partitions=16,
    )
    hold = slot_hold(stack.worker_metrics())
    assert hold is not None, "the worker exported no slot hold time"
    # One hold per handler run: every attempt row took a slot and gave it back.
    assert sum(hold["histogram"]["counts"]) == len(records.rows)
    doc["slot_hold_s"] = hold
    export = load_export(write_export(doc, tmp_path / "export.json"))
    assert export.tasks == expected
    assert 10 <= export.duration_s <= 20
    assert export.queue_wait_s is not None and export.end_to_end_s is not None
    assert export.service_measurement[0] == "slot_hold_s"


def test_distributed_run_master_and_one_worker(stack: LocalStack, tmp_path: Path) -> None:
    workload = dataclasses.replace(WORKLOAD, durability="LOCAL")
    cfg = RunConfig(
        stack.gateway,
        tmp_path / "dist",
        "steady",
        users=4,
        duration_s=8,
        spawn_rate=4,
        workers=1,
        run_id="dist1",
        workload=workload,
    )
    assert run_locust(cfg) == 0, (tmp_path / "dist" / "locust.log").read_text()[-3000:]
    agg = read_stats(cfg.csv_prefix)[AGGREGATED]
    assert agg.requests > 100 and agg.failures == 0
    worker_log = (tmp_path / "dist" / "locust-worker-1.log").read_text()
    assert "Traceback" not in worker_log, worker_log[-3000:]
