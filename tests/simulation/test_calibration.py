"""Calibration from load-test exports and `attempts` rows into an editable YAML file."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import yaml
from homeport.simulation.calibration import (
    attempt_stats,
    fit_service_time,
    params_from_attempts,
    params_from_export,
    write_params,
)
from homeport.simulation.errors import EmptyTraceError, ParameterError
from homeport.simulation.exports import load_export
from homeport.simulation.params import load_params

RNG = np.random.Generator(np.random.PCG64(2024))


def test_exponential_samples_fit_an_exponential() -> None:
    fit = fit_service_time(RNG.exponential(0.004, 20_000))
    assert fit.service_time.kind == "exponential"
    assert fit.service_time.mean == pytest.approx(0.004, rel=0.03)


def test_lognormal_samples_fit_a_lognormal() -> None:
    fit = fit_service_time(RNG.lognormal(np.log(0.003), 0.6, 20_000))
    assert fit.service_time.kind == "lognormal"
    assert fit.service_time.median_s == pytest.approx(0.003, rel=0.03)  # type: ignore[union-attr]
    assert fit.ks_lognormal < fit.ks_exponential


def test_bimodal_samples_are_kept_as_measured() -> None:
    samples = np.concatenate([RNG.normal(0.002, 0.0002, 10_000), RNG.normal(0.02, 0.001, 3_000)])
    fit = fit_service_time(samples)
    assert fit.service_time.kind == "empirical"
    assert fit.service_time.mean == pytest.approx(samples.mean(), rel=0.02)


def test_empty_samples_are_refused() -> None:
    with pytest.raises(EmptyTraceError):
        fit_service_time([])


def test_export_with_histograms_calibrates_and_round_trips(tmp_path: Path) -> None:
    export_file = tmp_path / "export.json"
    export_file.write_text(
        json.dumps(
            {
                "format": "homeport-loadtest-export/1",
                "duration_s": 60.0,
                "tasks": 120_000,
                "setup": {"workers": 4, "concurrency": 2, "partitions": 16},
                "service_time_s": {
                    "histogram": {
                        "bounds_s": [0.001, 0.002, 0.004, 0.008, 0.016],
                        "counts": [100, 400, 300, 150, 50],
                    }
                },
                "queue_wait_s": {"samples": [0.0, 0.001, 0.003], "p99_s": 0.004},
            }
        )
    )
    export = load_export(export_file)
    assert export.rate == 2000.0
    assert export.queue_wait_s is not None
    assert export.queue_wait_s.percentile(0.99, "queue_wait_s") == 0.004
    params, fit = params_from_export(export)
    assert params.regions[0].workers == 4 and params.regions[0].partitions == 16
    out = tmp_path / "params.yaml"
    write_params(params, out, source=str(export_file), fit=fit)
    text = out.read_text()
    assert text.startswith("# homeport simulation parameters")
    assert "KS distance" in text
    assert load_params(out) == params  # a person can edit it; the model reads it back


def _rows() -> list[dict[str, object]]:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    rows: list[dict[str, object]] = []
    for i in range(2000):
        enqueued = base + timedelta(seconds=i * 0.01)  # 100 tasks/s
        started = enqueued + timedelta(milliseconds=2)
        service = timedelta(seconds=float(RNG.exponential(0.005)))
        failed = i % 10 == 0
        rows.append(
            {
                "enqueued_at": enqueued,
                "started_at": started,
                "finished_at": started + service,
                "attempt": 1,
                "status": "failed" if failed else "succeeded",
                "partition_key": "hot" if i % 4 == 0 else f"k{i}",
            }
        )
        if failed:
            retry = started + service + timedelta(milliseconds=100)
            rows.append(
                {
                    "enqueued_at": enqueued.isoformat(),
                    "started_at": retry.isoformat(),
                    "finished_at": (retry + service).timestamp(),
                    "attempt": 2,
                    "status": "succeeded",
                }
            )
    return rows


def test_attempt_rows_give_rate_service_failures_and_skew() -> None:
    found = attempt_stats(_rows())
    assert found.tasks == 2000
    assert found.arrival_rate_per_s == pytest.approx(100, rel=0.01)
    assert np.mean(found.queue_waits_s) == pytest.approx(0.002, rel=0.01)
    assert found.failure_probability == pytest.approx(200 / 2200)
    assert found.hot_key_share == pytest.approx(0.25)
    params, fit = params_from_attempts(found, concurrency=2)
    assert fit.service_time.mean == pytest.approx(0.005, rel=0.1)
    assert params.retries.failure_probability == pytest.approx(200 / 2200)
    assert params.keys.hot_key_share == pytest.approx(0.25)


def test_attempt_rows_missing_a_field_are_refused_by_name() -> None:
    with pytest.raises(ParameterError, match=r"attempts\[0\]\.started_at"):
        attempt_stats([{"enqueued_at": 1.0}])
    with pytest.raises(EmptyTraceError):
        attempt_stats([])


def test_written_file_is_plain_yaml_a_person_can_edit(tmp_path: Path) -> None:
    params, fit = params_from_attempts(attempt_stats(_rows()))
    out = tmp_path / "p.yaml"
    write_params(params, out, source="attempts", fit=fit)
    data = yaml.safe_load(out.read_text())
    data["regions"][0]["workers"] = 7
    assert load_params(data).regions[0].workers == 7
