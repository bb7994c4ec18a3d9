"""File-based discovery of /metrics endpoints, in Prometheus' `file_sd_configs` format.

Workers are started and restarted by agents on ports picked at random, so no launcher
can list them in advance. Instead each process that serves /metrics writes one small
JSON file into a shared directory (setting `metrics_targets_dir`, env
`HOMEPORT_METRICS_TARGETS_DIR`) when its admin server is up, and removes it when it
stops. Prometheus watches the directory and scrapes whatever is announced. A process
that is SIGKILLed leaves its file behind: its target then shows `up == 0`, which is the
truth (something that was there is gone).
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def announce(directory: str | Path, job: str, address: str, labels: dict[str, str]) -> Path:
    """Write the target file of this process; returns its path (for `withdraw`).

    Written to a temporary name and renamed, so Prometheus never reads half a file.
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    port = address.rsplit(":", 1)[-1]
    path = folder / f"{job}-{os.getpid()}-{port}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([{"targets": [address], "labels": {"job": job, **labels}}]))
    tmp.replace(path)
    return path


def withdraw(path: Path | None) -> None:
    """Remove a target file written by `announce` (a clean stop leaves no stale target)."""
    if path is not None:
        path.unlink(missing_ok=True)
