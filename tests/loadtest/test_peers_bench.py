"""`homeport bench peers` end to end on a few tasks, as a user runs it: its own Redis, a
record store it starts itself (no --pg-dsn), the raw baseline and the homeport contender
with an unordered kind. A smoke test of the harness, not a speed test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from homeport.loadtest.peers.homeport_peer import app, app_unordered


def test_the_unordered_contender_registers_the_same_kind_without_order() -> None:
    ordered, unordered = app.handler("noop"), app_unordered.handler("noop")
    assert ordered is not None and unordered is not None
    assert (ordered.options.ordered, unordered.options.ordered) == (True, False)


def test_bench_peers_runs_raw_and_homeport_with_its_own_record_store(tmp_path: Path) -> None:
    out = tmp_path / "peers"
    out.mkdir()
    # An earlier bench's files in the same --out are not taken for this one's results.
    (out / "raw-redis-streams-tp1.json").write_text('{"first": 0.0, "last": 1.0}')
    (out / "raw-redis-streams-lat.json").write_text('{"latencies": [9.0]}')
    only = "raw,homeport-unordered"
    argv = [sys.executable, "-m", "homeport", "bench", "peers", "--only", only, "--runs", "1",
            "--tasks", "400", "--latency-tasks", "20", "--out", str(out)]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = {r["name"]: r for r in json.loads((out / "results.json").read_text())["results"]}
    assert set(results) == {"raw Redis streams", "homeport (SubmitBatch, unordered kind)"}
    for name, r in results.items():
        assert r["error"] == "", f"{name}: {r['error']}"
        assert r["tasks"] == 400 and len(r["end_to_end"]) == 1 and r["end_to_end"][0] > 0, r
        assert r["latency_samples"] == 20, r
        assert len(r["start_s"]) == 1 and 0 < r["start_s"][0] < 60, r
    assert "unordered kind" in (out / "table.md").read_text()
