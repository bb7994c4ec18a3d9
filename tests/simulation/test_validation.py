"""`plan validate`: the model calibrated at one load predicts the waits at others.

The "measured" runs here come from an independent FIFO c-server queue written below in
a few lines of numpy (not from the SimPy model), with a fixed dispatch time added to
every wait, as a real stream read and begin step add one.
"""

from __future__ import annotations

import heapq
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from homeport.simulation.errors import ParameterError
from homeport.simulation.exports import load_export
from homeport.simulation.validation import validate

from homeport.cli import main

SERVICE_MEAN_S = 0.02
SLOTS = 4
DISPATCH_S = 0.002


def _measured_run(rate: float, seed: int, n: int = 30_000, slow: float = 1.0) -> dict:
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1 / rate, n))
    service = rng.exponential(SERVICE_MEAN_S, n)
    free = [0.0] * SLOTS
    waits = np.empty(n)
    for i, (at, work) in enumerate(zip(arrivals, service, strict=True)):
        start = max(at, heapq.heappop(free))
        waits[i] = (start - at) * slow + DISPATCH_S
        heapq.heappush(free, start + work)
    return {
        "format": "homeport-loadtest-export/1",
        "duration_s": float(arrivals[-1]),
        "tasks": n,
        "setup": {"workers": 1, "concurrency": SLOTS, "partitions": 16},
        "service_time_s": {"samples": service[:20_000].tolist()},
        "queue_wait_s": {"samples": waits.tolist()},
    }


def test_prediction_follows_the_measured_waits_across_load_levels() -> None:
    rates = (100.0, 140.0, 170.0)  # utilisation 0.5, 0.7, 0.85
    runs = [
        (f"rho{r / 200:.2f}", load_export(_measured_run(r, seed=i))) for i, r in enumerate(rates)
    ]
    fit, checks = validate(
        runs, tasks=60_000, spread_seeds=0, order="fifo"
    )  # the system here is FIFO
    assert abs(fit.service_time.mean - SERVICE_MEAN_S) / SERVICE_MEAN_S < 0.05
    expected = [r * fit.service_time.mean / SLOTS for r in rates]  # about 0.5, 0.7, 0.85
    assert [c.utilisation for c in checks] == pytest.approx(expected, rel=0.03)
    assert checks[0].dispatch_s == pytest.approx(DISPATCH_S, abs=1e-4)
    for c in checks:
        # p99 near saturation moves fast with the fitted mean: a few % of fit error is
        # tens of % of p99 at 0.85, so the band is wider than a fit at one load would need.
        assert 0.7 < c.p99_ratio < 1.4, (c.label, c.measured_p99_s, c.predicted_p99_s)
    # The waits really grow with the load, in the measurements and in the prediction.
    assert checks[0].measured_p99_s < checks[1].measured_p99_s < checks[2].measured_p99_s
    assert checks[0].predicted_p99_s < checks[1].predicted_p99_s < checks[2].predicted_p99_s


def test_a_system_slower_than_the_model_shows_in_the_ratio() -> None:
    runs = [
        ("calm", load_export(_measured_run(100.0, seed=1))),
        ("slow", load_export(_measured_run(170.0, seed=2, slow=5.0))),
    ]
    _, checks = validate(runs, tasks=60_000, spread_seeds=0, order="fifo")
    assert checks[0].p99_ratio < 1.33
    assert checks[1].p99_ratio > 3, "five times the queueing must not pass as a match"


def test_an_export_without_queue_waits_is_refused_naming_it() -> None:
    doc = _measured_run(100.0, seed=1)
    del doc["queue_wait_s"]
    with pytest.raises(ParameterError, match="queue_wait_s"):
        validate([("no-waits", load_export(doc))])


def test_cli_prints_json_and_writes_the_plot(tmp_path: Path) -> None:
    paths = []
    for i, rate in enumerate((100.0, 170.0)):
        path = tmp_path / f"level{i}" / "export.json"
        path.parent.mkdir()
        path.write_text(json.dumps(_measured_run(rate, seed=i, n=10_000)))
        paths.append(str(path))
    plot = tmp_path / "validation.png"
    result = CliRunner().invoke(
        main, ["plan", "validate", *paths, "--tasks", "20000", "--plot", str(plot), "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [level["label"] for level in data["levels"]] == ["level0", "level1"]
    assert plot.stat().st_size > 10_000
    bad = CliRunner().invoke(main, ["plan", "validate", paths[0], "--calibrate-on", "3"])
    assert bad.exit_code != 0 and "calibrate_on" in bad.output
