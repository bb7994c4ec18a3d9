"""The simulation export: built from attempt rows, read back by the simulation's loader."""

from __future__ import annotations

from pathlib import Path

from homeport.loadtest.export import MAX_SAMPLES, build_export, measurement, window_s, write_export
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
