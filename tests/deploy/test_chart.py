"""deploy/helm/homeport, checked offline: `helm template` over each region's rendered
values, kubernetes-validate --strict against one Kubernetes version, checkov on the
manifests, and structural rules on the parsed manifests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from homeport.regions.topology import Topology

from tests.deploy.conftest import CHART, KUBERNETES_VERSION, checkov, helm_template, run, tool

Docs = dict[str, list[dict[str, Any]]]

# Every checkov check skipped on the rendered manifests, with the reason it does not apply.
MANIFEST_SKIPS = {
    "CKV_K8S_43": "images are pinned by tag in values; digests are set per release by CI",
    "CKV_K8S_35": "PGPASSWORD comes from a Secret via env: a passfile mounted from a Secret is "
    "root-owned, and asyncpg ignores a group-readable one",
    "CKV_K8S_116": "etcd client TLS waits for homeport's etcd client to carry certificates "
    "(docs/deploy.md, Known gaps); peer traffic is mutual TLS",
    "CKV_K8S_117": "as CKV_K8S_116: client certificate auth needs client TLS first",
}
STORES = ("redis", "etcd", "mirror", "postgres")


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def _kinds(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def test_every_region_renders_its_workloads(manifests: Docs) -> None:
    assert sorted(manifests) == ["eu-west", "us-east", "us-west"]
    for region, docs in manifests.items():
        names = {(d["kind"], d["metadata"]["name"]) for d in docs}
        for want in [
            ("StatefulSet", "homeport-redis-primary"),
            ("StatefulSet", "homeport-redis-replica"),
            ("StatefulSet", "homeport-etcd"),
            ("Deployment", "homeport-gateway"),
            ("Deployment", "homeport-agent"),
            ("Deployment", "homeport-worker"),
            ("HorizontalPodAutoscaler", "homeport-gateway"),
            ("HorizontalPodAutoscaler", "homeport-worker"),
            ("NetworkPolicy", "homeport-default-deny"),
        ]:
            assert want in names, f"{region}: {want} not rendered"
        assert len(_kinds(docs, "PodDisruptionBudget")) >= 4, region


def test_each_region_hosts_the_mirror_of_the_home_it_stands_by_for(
    manifests: Docs, example_topology: Topology
) -> None:
    for home in example_topology.regions:
        assert home.standby is not None
        docs = manifests[home.standby]
        mirror = [
            d for d in _kinds(docs, "StatefulSet") if d["metadata"]["name"].endswith(home.name)
        ]
        assert len(mirror) == 1, f"{home.standby} has no mirror of {home.name}"
        args = _containers(mirror[0])[0]["args"]
        primary = (home.redis.primary or "").split(":")
        at = args.index("--replicaof")
        assert args[at + 1 : at + 3] == primary, f"mirror of {home.name} replicates {args}"


def test_worker_hpa_scales_on_the_region_backlog(manifests: Docs) -> None:
    for region, docs in manifests.items():
        hpa = next(
            d for d in _kinds(docs, "HorizontalPodAutoscaler") if "worker" in d["metadata"]["name"]
        )
        metric = hpa["spec"]["metrics"][0]
        assert metric["type"] == "External", region
        assert metric["external"]["metric"]["selector"]["matchLabels"] == {"region": region}


def test_etcd_initial_cluster_lists_one_member_per_region(
    manifests: Docs, example_topology: Topology
) -> None:
    regions = sorted(example_topology.region_names())
    for region, docs in manifests.items():
        etcd = [d for d in _kinds(docs, "StatefulSet") if d["metadata"]["name"].endswith("-etcd")]
        assert len(etcd) == 1 and etcd[0]["spec"]["replicas"] == 1, region
        command = _containers(etcd[0])[0]["command"]
        flag = next(a for a in command if a.startswith("--initial-cluster="))
        members = [m.split("=", 1) for m in flag.removeprefix("--initial-cluster=").split(",")]
        assert sorted(name for name, _ in members) == regions, flag
        assert all(url.startswith("https://") for _, url in members), flag
        assert f"--name={region}" in command


def _exposed(svc: dict[str, Any]) -> str | None:
    spec = svc["spec"]
    if spec.get("type", "ClusterIP") != "ClusterIP":
        return f"type {spec['type']}"
    if spec.get("externalIPs"):
        return f"externalIPs {spec['externalIPs']}"
    return None


def test_no_service_exposes_redis_etcd_or_postgres_outside_the_cluster(manifests: Docs) -> None:
    checked = 0
    for region, docs in manifests.items():
        for svc in _kinds(docs, "Service"):
            name = svc["metadata"]["name"]
            ports = " ".join(str(p.get("name", "")) + str(p["port"]) for p in svc["spec"]["ports"])
            if any(s in name or s in ports for s in STORES) or any(
                p["port"] in (6379, 2379, 2380, 5432) for p in svc["spec"]["ports"]
            ):
                checked += 1
                assert _exposed(svc) is None, f"{region}: {name} is exposed: {_exposed(svc)}"
    assert checked >= 12, f"only {checked} store Services found"


def test_exposure_rule_catches_a_load_balancer() -> None:
    svc = {"spec": {"type": "LoadBalancer", "ports": [{"port": 6379}]}}
    assert _exposed(svc) == "type LoadBalancer"
    assert _exposed({"spec": {"externalIPs": ["1.2.3.4"], "ports": []}})


def test_every_container_has_limits_and_probes(manifests: Docs) -> None:
    seen = 0
    for region, docs in manifests.items():
        for doc in docs:
            for c in _containers(doc):
                seen += 1
                where = f"{region} {doc['kind']}/{doc['metadata']['name']} {c['name']}"
                limits = c.get("resources", {}).get("limits", {})
                assert {"cpu", "memory"} <= set(limits), f"{where}: limits {limits}"
                assert c.get("resources", {}).get("requests"), f"{where}: no requests"
                assert "livenessProbe" in c and "readinessProbe" in c, f"{where}: probes"
    assert seen >= 21, seen


def test_homeport_processes_probe_healthz_and_readyz_on_the_admin_port(manifests: Docs) -> None:
    for docs in manifests.values():
        for doc in _kinds(docs, "Deployment"):
            c = _containers(doc)[0]
            admin = next(p["containerPort"] for p in c["ports"] if p["name"] == "admin")
            assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
            assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
            assert f"--admin-port={admin}" in c["args"]


def test_kubernetes_validate_strict(manifests: Docs, tmp_path: Path) -> None:
    files = []
    for region, docs in manifests.items():
        path = tmp_path / f"{region}.yaml"
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        files.append(str(path))
    result = run(
        [tool("kubernetes-validate"), "--strict", "--kubernetes-version",
         KUBERNETES_VERSION, *files],
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    checked = result.stdout.count(f"against version {KUBERNETES_VERSION}")
    assert checked == sum(len(d) for d in manifests.values()), result.stdout[-4000:]


def test_kubernetes_validate_rejects_an_unknown_field(tmp_path: Path, manifests: Docs) -> None:
    """The strict check can fail: a misspelt container field is refused."""
    doc = json.loads(json.dumps(_kinds(manifests["us-east"], "Deployment")[0]))
    _containers(doc)[0]["livenesProbe"] = {"tcpSocket": {"port": 1}}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    result = run(
        [tool("kubernetes-validate"), "--strict", "--kubernetes-version",
         KUBERNETES_VERSION, str(path)],
    )  # fmt: skip
    assert result.returncode != 0 and "livenesProbe" in result.stdout, result.stdout


def test_values_schema_refuses_bad_values(rendered: Any, tmp_path: Path) -> None:
    values = yaml.safe_load(rendered.files["helm/us-east.values.yaml"])
    values["redis"]["replicas"] = 0
    path = tmp_path / "bad.values.yaml"
    path.write_text(yaml.safe_dump(values))
    result = helm_template(path)
    assert result.returncode != 0 and "replicas" in result.stderr, result.stderr


def test_checkov_passes_on_the_manifests(manifest_dir: Path) -> None:
    passed, failed = checkov(manifest_dir, "kubernetes", MANIFEST_SKIPS)
    assert passed > 50, f"checkov ran only {passed} checks"
    assert not failed, "checkov failed:\n" + "\n".join(failed)


@pytest.mark.parametrize("path", sorted(CHART.rglob("*.json")), ids=lambda p: p.name)
def test_chart_json_parses(path: Path) -> None:
    assert json.loads(path.read_text())["properties"]


def test_target_group_bindings_point_at_the_listeners_services(
    rendered: Any, tmp_path: Path
) -> None:
    values = yaml.safe_load(rendered.files["helm/us-west.values.yaml"])
    arn = "arn:aws:elasticloadbalancing:us-west-2:123456789012:targetgroup/x/{}"
    values["targetGroupArns"] = {
        "gateway": arn.format(1), "etcd-peer": arn.format(2), "mirror-us-east": arn.format(3),
    }  # fmt: skip
    path = tmp_path / "tgb.values.yaml"
    path.write_text(yaml.safe_dump(values))
    result = helm_template(path)
    assert result.returncode == 0, result.stderr
    tgbs = {
        d["metadata"]["name"]: d["spec"]["serviceRef"]
        for d in yaml.safe_load_all(result.stdout)
        if d and d["kind"] == "TargetGroupBinding"
    }
    assert tgbs == {
        "homeport-gateway": {"name": "homeport-gateway", "port": 50051},
        "homeport-etcd-peer": {"name": "homeport-etcd", "port": 2380},
        "homeport-mirror-us-east": {"name": "homeport-mirror-us-east", "port": 6380},
    }
    values["targetGroupArns"] = {"mirror-nowhere": arn.format(4)}
    path.write_text(yaml.safe_dump(values))
    result = helm_template(path)
    assert result.returncode != 0 and "mirror-nowhere" in result.stderr


def test_each_home_primary_admits_its_standby_region_for_mirroring(
    manifests: Docs, example_topology: Topology
) -> None:
    """The mirror in the standby region replicates the home's primary: the primary's
    NetworkPolicy must let the standby's network in (the other half of the path the
    interconnect's peering gives)."""
    for home in example_topology.regions:
        standby = example_topology.region(home.standby or "")
        assert standby.deploy is not None
        policy = next(
            d
            for d in _kinds(manifests[home.name], "NetworkPolicy")
            if d["metadata"]["name"] == "homeport-redis-primary"
        )
        blocks = [
            src["ipBlock"]["cidr"]
            for rule in policy["spec"]["ingress"]
            for src in rule["from"]
            if "ipBlock" in src
        ]
        assert standby.deploy.cidr in blocks, f"{home.name}'s primary refuses {standby.name}"
