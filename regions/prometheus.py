"""A real Prometheus server for the local cluster (`homeport dev up --with-prometheus`).

It runs on loopback with the project's own rules (`deploy/prometheus/*.rules.yml`) and
finds every process by file-based discovery: each gateway, agent and worker announces
its /metrics address in `<state>/targets/` (`core.targets`), and the launcher adds one
static file for the etcd members (`<state>/targets/servers/`). Homeport's processes are
scraped and the rules evaluated every second, so the alerts' `for:` windows, not the
sampling, decide how soon an alert fires. The etcd members are scraped every
`SERVER_INTERVAL`: each scrape is 150 kB of Go metrics, and at one a second the three
members' scrapes cost the 2-core host a twelfth of a core; their only rule waits 10 s.

The binary is built from the Prometheus Go module by `scripts/install.sh` into
`.tools/bin/prometheus` (or named by `HOMEPORT_PROMETHEUS`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml
from homeport.regions.processes import ProcessRecord, ProcessTable, spawn, wait_ready

REPO = Path(__file__).resolve().parent.parent
RULES_DIR = REPO / "deploy" / "prometheus"
INTERVAL = "1s"  # scrape and evaluation interval in the local cluster
SERVER_INTERVAL = "5s"  # scrape interval of the servers' targets (etcd members)
SERVERS = "servers"  # subfolder of the targets folder with the servers' static targets
READY_TIMEOUT = 30.0  # seconds Prometheus may take to load its rules and answer


def start(table: ProcessTable, binary: str, state_dir: Path, port: int) -> ProcessRecord:
    """Start Prometheus for the cluster in `state_dir` (targets in `state_dir/targets`),
    recorded in `table` as process `prometheus`; returns once it answers /-/ready."""
    config = write_config(state_dir, state_dir / "targets")
    data = state_dir / "prometheus"
    data.mkdir(parents=True, exist_ok=True)
    record = spawn(
        table, "prometheus", "prometheus", argv(binary, config, data, port),
        state_dir / "logs" / "prometheus.log", address=f"127.0.0.1:{port}",
    )  # fmt: skip
    wait_ready(record, lambda: ready(port), READY_TIMEOUT)
    return record


def write_config(state_dir: Path, targets_dir: Path, rules_dir: Path = RULES_DIR) -> Path:
    """Write `prometheus.yml` for the local cluster and return its path."""
    config = {
        "global": {
            "scrape_interval": INTERVAL,
            "evaluation_interval": INTERVAL,
            "scrape_timeout": "900ms",
        },
        "rule_files": [str(rules_dir / "*.rules.yml")],
        "scrape_configs": [
            {
                # Each target file names its own `job` (gateway, agent, worker).
                "job_name": "homeport",
                "file_sd_configs": [
                    {"files": [str(targets_dir / "*.json")], "refresh_interval": INTERVAL}
                ],
            },
            {
                # The static targets of `write_static_targets` (job etcd).
                "job_name": "servers",
                "scrape_interval": SERVER_INTERVAL,
                "file_sd_configs": [
                    {"files": [str(targets_dir / SERVERS / "*.json")], "refresh_interval": INTERVAL}
                ],
            },
        ],
    }
    path = state_dir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def write_static_targets(targets_dir: Path, job: str, addresses: list[str]) -> Path:
    """A target file for servers that do not announce themselves (etcd members),
    scraped every `SERVER_INTERVAL`."""
    folder = targets_dir / SERVERS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{job}.json"
    path.write_text(json.dumps([{"targets": addresses, "labels": {"job": job}}]))
    return path


def argv(binary: str, config: Path, data_dir: Path, port: int) -> list[str]:
    return [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={data_dir}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=1d",
        "--log.level=warn",
    ]


def ready(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/-/ready", timeout=1).ok
    except requests.RequestException:
        return False


@dataclass(frozen=True)
class AlertState:
    """One alert instance as Prometheus reports it: its labels and state."""

    name: str
    labels: dict[str, str]
    state: str  # "pending" or "firing"


class PrometheusClient:
    """The few HTTP API calls the launcher, tests and game days need."""

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def _get(self, path: str, **params: Any) -> Any:
        reply = requests.get(f"{self.url}{path}", params=params, timeout=self.timeout_s)
        reply.raise_for_status()
        body = reply.json()
        if body.get("status") != "success":
            raise RuntimeError(f"Prometheus {path} answered {body}")
        return body["data"]

    def alerts(self) -> list[AlertState]:
        """Alerts pending or firing now."""
        return [
            AlertState(a["labels"]["alertname"], a["labels"], a["state"])
            for a in self._get("/api/v1/alerts")["alerts"]
        ]

    def query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._get("/api/v1/query", query=expr)["result"]
        return result

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[Any]:
        result: list[Any] = self._get(
            "/api/v1/query_range", query=expr, start=start, end=end, step=step
        )["result"]
        return result

    def targets(self) -> list[dict[str, Any]]:
        active: list[dict[str, Any]] = self._get("/api/v1/targets")["activeTargets"]
        return active

    def rule_groups(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = self._get("/api/v1/rules")["groups"]
        return groups
