"""`homeport worker --processes N`: forked workers of one App share the partitions through
the leases, keep per-key order, and stop together on one SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from homeport.core.broker import Broker
from homeport.core.producer import Producer
from homeport.core.settings import Settings
from homeport.core.store import RecordStore

from .conftest import REGION
from .procs import WorkerProcess, read_exec_log
from .test_crash import PARTITIONS, _all_succeeded, _assert_per_key_order, _spread, _tasks


async def test_two_forked_worker_processes_share_partitions_and_keep_per_key_order(
    redis_url: str, pg_dsn: str, store: RecordStore, broker: Broker, tmp_path: Path
) -> None:
    exec_log = tmp_path / "exec.log"
    parent = WorkerProcess(
        tmp_path, "pair", redis_url, pg_dsn, exec_log, extra=("--processes", "2")
    )
    try:
        await parent.wait_started()
        await _spread(broker, 2)  # two live workers (the children), partitions over both
        tasks = _tasks(2000, 100)
        producer = Producer(
            broker, Settings(region=REGION, partitions=PARTITIONS, redis_url=redis_url)
        )
        for lo in range(0, len(tasks), 1000):
            assert all(r.ok for r in await producer.submit_many(tasks[lo : lo + 1000], 0))
        await _all_succeeded(store, 2000, 120)
    finally:
        parent.proc.send_signal(signal.SIGTERM)  # forwarded to both children
        code = await asyncio.to_thread(parent.proc.wait, 60)
    assert code == 0, parent.log()
    rows = read_exec_log(exec_log)
    ran_in = {pid for pid, *_ in rows}
    assert len(ran_in) == 2 and parent.pid not in ran_in, "the two children ran the tasks"
    assert _assert_per_key_order(rows, 2000) == 0
    attempts = await store.attempts()
    assert len({a.worker for a in attempts}) == 2
