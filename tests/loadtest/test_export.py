"""The simulation export: built from attempt rows, read back by the simulation's loader."""

from __future__ import annotations

from pathlib import Path

from homeport.core.metrics import SLOT_HOLD_BUCKETS
from homeport.loadtest.export import (
    MAX_SAMPLES,
    build_export,
    measurement,
    slot_hold,
    window_s,
    write_export,
)
from homeport.loadtest.locuststats import HistoryPoint
from homeport.simulation.calibration import params_from_export
from homeport.simulation.exports import load_export


def _rows(n: int) -> list[dict[str, float | int | str]]:
    rows: list[dict[str, float | int | str]] = []
    for i in range(n):
        enq = 1000.0 + i * 0.01
        start = enq + 0.002 + (i % 5) * 0.001
        end = start + 0.004 + (i % 3) * 0.001
        rows.append(
            {
                "enqueued_at": enq,
                "started_at": start,
                "finished_at": end,
                "task_finished_at": end,
                "attempt": 1,
                "status": "succeeded",
                "partition_key": f"k{i % 7}",
            }
        )
    return rows


def test_export_round_trips_into_the_simulation_loader(tmp_path: Path) -> None:
    doc = build_export(
        duration_s=20.0, tasks=2000, rows=_rows(2000), workers=2, concurrency=64, partitions=16
    )
    export = load_export(write_export(doc, tmp_path / "export.json"))
    assert export.rate == 100.0
    assert export.tasks == 2000
    assert export.setup is not None and export.setup.workers == 2
    assert export.queue_wait_s is not None and export.end_to_end_s is not None
    assert abs(export.service_time_s.percentile(0.5, "service_time_s") - 0.005) < 1e-9
    assert abs(export.queue_wait_s.percentile(0.5, "queue_wait_s") - 0.004) < 1e-9
    assert export.end_to_end_s.percentile(0.99, "end_to_end_s") <= 0.013 + 1e-9
    params, fit = params_from_export(export)  # the calibration accepts it as well
    assert fit.samples == 2000


def test_retries_count_as_service_time_but_not_as_queue_wait() -> None:
    rows = _rows(3)
    rows.append({**rows[0], "attempt": 2, "started_at": 2000.0, "finished_at": 2000.5})
    doc = build_export(duration_s=1.0, tasks=3, rows=rows, workers=1, concurrency=1, partitions=1)
    assert len(doc["service_time_s"]["samples"]) == 4
    assert len(doc["queue_wait_s"]["samples"]) == 3


def test_large_runs_are_thinned_but_percentiles_use_every_value() -> None:
    m = measurement(float(i) for i in range(3 * MAX_SAMPLES))
    assert m is not None
    assert len(m["samples"]) == MAX_SAMPLES
    assert m["p50_s"] == (3 * MAX_SAMPLES - 1) / 2


def test_window_is_the_span_of_busy_history_seconds() -> None:
    history = [HistoryPoint(t, 5, 10.0, 3.0, 0 if t < 102 else t, 0) for t in range(100, 120)]
    assert window_s(history, 60.0) == 18.0
    assert window_s([], 60.0) == 60.0


def _hold_metrics(counts: list[int], total_s: float) -> str:
    """A worker's /metrics text holding a slot-hold histogram with cumulative `counts`
    at the first bounds of the real bucket layout."""
    lines = ["# TYPE homeport_slot_hold_seconds histogram"]
    running = 0
    for bound, count in zip(SLOT_HOLD_BUCKETS, counts, strict=False):
        running = count
        lines.append(f'homeport_slot_hold_seconds_bucket{{le="{bound}",region="us-east"}} {count}')
    lines.append(f'homeport_slot_hold_seconds_bucket{{le="+Inf",region="us-east"}} {running}')
    lines.append(f'homeport_slot_hold_seconds_count{{region="us-east"}} {running}')
    lines.append(f'homeport_slot_hold_seconds_sum{{region="us-east"}} {total_s}')
    return "\n".join(lines) + "\n"


def test_slot_hold_sums_workers_and_turns_cumulative_buckets_into_counts(
    tmp_path: Path,
) -> None:
    one = _hold_metrics([0, 2, 5, 5, 9], 0.01)
    two = _hold_metrics([1, 1, 4, 6, 6], 0.01)
    hold = slot_hold([one, two])
    assert hold is not None
    assert hold["histogram"]["counts"][:5] == [1, 2, 6, 2, 4]
    assert sum(hold["histogram"]["counts"]) == 15
    doc = build_export(
        duration_s=20.0, tasks=2000, rows=_rows(2000), workers=2, concurrency=64, partitions=16
    )
    doc["slot_hold_s"] = hold
    export = load_export(write_export(doc, tmp_path / "export.json"))
    # Calibration fits the hold time, not the handler time, when the export has it.
    assert export.service_measurement[0] == "slot_hold_s"
    _, fit = params_from_export(export)
    assert fit.samples == 15
    assert fit.service_time.mean < 0.001  # the holds, all under 0.6 ms; handlers were 4-6 ms


def test_slot_hold_is_none_when_no_worker_observed_one() -> None:
    assert slot_hold(["# TYPE other counter\nother_total 3\n"]) is None
    assert slot_hold([_hold_metrics([0, 0, 0], 0.0)]) is None


def test_arrival_times_are_first_attempts_enqueue_times_from_the_first(tmp_path: Path) -> None:
    rows = _rows(50)[::-1]  # any order in, sorted out
    rows.append({**rows[0], "attempt": 2, "enqueued_at": 5000.0, "started_at": 5000.1})
    doc = build_export(duration_s=1.0, tasks=50, rows=rows, workers=1, concurrency=1, partitions=1)
    times = doc["arrival_times_s"]
    assert len(times) == 50  # the retry is no arrival
    assert times[0] == 0.0 and times == sorted(times)
    assert abs(times[-1] - 0.49) < 1e-6
    export = load_export(write_export(doc, tmp_path / "export.json"))
    assert export.arrival_times_s is not None and len(export.arrival_times_s) == 50


def test_partition_owners_are_the_worker_that_ran_most_of_each_partition() -> None:
    rows = _rows(40)
    for i, r in enumerate(rows):
        r["partition"] = i % 4
        r["worker"] = "w-b" if i % 4 == 3 else "w-a"
    rows[3]["worker"] = "w-a"  # partition 3 moved once: still w-b's
    doc = build_export(duration_s=1.0, tasks=40, rows=rows, workers=2, concurrency=1, partitions=4)
    assert doc["setup"]["owners"] == [0, 0, 0, 1]
    assert load_export(doc).setup.owners == (0, 0, 0, 1)  # type: ignore[union-attr]
    # Older rows without worker or partition: no split is claimed.
    assert (
        "owners"
        not in build_export(
            duration_s=1.0, tasks=40, rows=_rows(40), workers=2, concurrency=1, partitions=4
        )["setup"]
    )
