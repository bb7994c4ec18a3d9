"""Every metric the dashboards and rules name is exported by a real process: a local
cluster with its services (`homeport dev up`, the launcher users run) is started, every
/metrics endpoint its processes announce for discovery is scraped, etcd's too, and the
names are compared. With the Prometheus binary built, the same cluster runs Prometheus
with the rules: every target is scraped, every rule evaluates, and every dashboard query
runs on it."""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from homeport.observe.queries import exported_names, expressions, recorded_names, unexported
from homeport.regions.devcluster import ClusterSpec, DevCluster
from homeport.regions.prometheus import PrometheusClient
from homeport.regions.servers import Binaries

from tests.conftest import _start

HAVE_PROMETHEUS = shutil.which(Binaries().prometheus) is not None
WAIT_S = 180.0  # services import grpc and the engine: slow on 2 loaded cores


@pytest.fixture(scope="module")
def observed(state_dir_factory: list[Path]) -> Iterator[DevCluster]:
    spec = dataclasses.replace(
        ClusterSpec.default(3, partitions=4),
        services="homeport.loadtest.apps:app",
        workers=1,
        with_prometheus=HAVE_PROMETHEUS,
    )
    yield from _start(spec, "observe", state_dir_factory)


def _targets(cluster: DevCluster) -> dict[str, list[str]]:
    """job -> addresses, from the discovery files the processes wrote."""
    jobs: dict[str, list[str]] = {}
    for path in cluster.targets_dir.glob("**/*.json"):
        for group in json.loads(path.read_text()):
            jobs.setdefault(group["labels"]["job"], []).extend(group["targets"])
    return jobs


def _wait_for_every_process(cluster: DevCluster) -> dict[str, list[str]]:
    """Bounded wait until 3 gateways, 3 agents and a worker per home announced."""
    deadline = time.monotonic() + WAIT_S
    while True:
        jobs = _targets(cluster)
        counts = {job: len(jobs.get(job, [])) for job in ("gateway", "agent", "worker", "etcd")}
        if all(n >= 3 for n in counts.values()):
            return jobs
        if time.monotonic() > deadline:
            raise AssertionError(
                f"after {WAIT_S:g}s only {counts} announced in {cluster.targets_dir}"
            )
        time.sleep(0.5)  # polling files the processes write, bounded by the deadline


@pytest.mark.timeout(400)
def test_every_metric_named_by_dashboards_and_rules_is_exported(observed: DevCluster) -> None:
    jobs = _wait_for_every_process(observed)
    exported: set[str] = set()
    for job, addresses in jobs.items():
        for address in addresses:
            reply = requests.get(f"http://{address}/metrics", timeout=5)
            assert reply.ok, f"{job} at {address}: {reply.status_code}"
            exported |= exported_names(reply.text)
    # What each kind of process adds, spot-checked so the scrape is known to be real.
    assert {"homeport_route_epoch", "homeport_owned_partitions", "etcd_server_has_leader",
            "homeport_gateway_submit_duration_seconds_bucket"} <= exported  # fmt: skip
    missing = unexported(expressions(), exported, recorded_names())
    assert missing == {}, f"named but exported by no process: {missing}"


@pytest.mark.skipif(not HAVE_PROMETHEUS, reason="Prometheus not built (scripts/install.sh)")
@pytest.mark.timeout(400)
def test_prometheus_scrapes_every_process_and_evaluates_every_rule(observed: DevCluster) -> None:
    _wait_for_every_process(observed)
    url = observed.prometheus_url()
    assert url is not None
    prom = PrometheusClient(url)
    deadline = time.monotonic() + 60
    while True:
        targets = prom.targets()
        jobs = {t["labels"]["job"] for t in targets if t["health"] == "up"}
        groups = prom.rule_groups()
        rules = [r for g in groups for r in g["rules"]]
        evaluated = rules and all(r.get("lastEvaluation", "").startswith("2") for r in rules)
        if jobs >= {"gateway", "agent", "worker", "etcd"} and evaluated:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"targets up: {sorted(jobs)}; rules: {len(rules)}")
        time.sleep(0.5)  # Prometheus scrapes and evaluates every second
    assert {g["name"] for g in groups} == {"homeport-alerts", "homeport-recording"}
    assert [r["name"] for r in rules if r.get("health") != "ok"] == []
    for e in expressions():
        prom.query(e.expr)  # raises on a query Prometheus refuses
    # The recording rule's first evaluation may precede the agents' first route scrape:
    # wait (bounded) for the recorded series, every home in it.
    deadline = time.monotonic() + 30
    while True:
        served = prom.query("homeport:route_epoch:max")
        homes = {s["metric"]["home"] for s in served}
        if homes == {"us-east", "eu-west", "ap-south"} or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert homes == {"us-east", "eu-west", "ap-south"}
