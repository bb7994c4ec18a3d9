"""Fixtures of the offline deployment checks: the tools, the example topology and what
rendering it produces (tfvars, Helm values, `helm template` manifests).

The tools are real binaries installed by scripts/install.sh: hclfmt and helm in
.tools/bin (from their Go modules), checkov and kubernetes-validate in .venv. A missing
tool fails the test that needs it, naming the install step, instead of skipping it: a
check that silently does not run is a check that cannot fail.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from homeport.regions.render import Rendered, render
from homeport.regions.topology import Topology, load_topology

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "terraform"
CHART = ROOT / "deploy" / "helm" / "homeport"
EXAMPLE = TERRAFORM / "examples" / "three-region"
KUBERNETES_VERSION = "1.31"  # the version kubernetes-validate checks the manifests against


def tool(name: str) -> str:
    """Path of a tool from .tools/bin, the virtualenv, or PATH; fails the test if none."""
    for candidate in (ROOT / ".tools" / "bin" / name, Path(sys.executable).parent / name):
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: run scripts/install.sh (docs/deploy.md)")
    return found


def run(argv: list[str], timeout: float = 300, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)


def checkov(directory: Path, framework: str, skips: dict[str, str]) -> tuple[int, list[str]]:
    """Run checkov on `directory`: (checks passed, failed checks as readable lines).
    `skips` maps each skipped check id to the reason it does not apply."""
    result = run(
        [tool("checkov"), "-d", str(directory), "--framework", framework, "--quiet",
         "--compact", "--output", "json", "--skip-check", ",".join(skips)],
        cwd=ROOT,
    )  # fmt: skip
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov gave no report (exit {result.returncode}): {result.stderr[-2000:]}")
    reports = report if isinstance(report, list) else [report]
    failed = sorted(
        {
            f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}"
            for r in reports
            for c in r.get("results", {}).get("failed_checks", [])
        }
    )
    return sum(r.get("summary", {}).get("passed", 0) for r in reports), failed


def helm_template(values: Path, namespace: str = "homeport") -> subprocess.CompletedProcess[str]:
    """`helm template` of the chart, as a release `homeport`, for KUBERNETES_VERSION."""
    return run(
        [tool("helm"), "template", "homeport", str(CHART), "-f", str(values),
         "--namespace", namespace, "--kube-version", KUBERNETES_VERSION],
    )  # fmt: skip


@pytest.fixture(scope="session")
def example_topology() -> Topology:
    return load_topology(EXAMPLE / "topology.yaml")


@pytest.fixture(scope="session")
def rendered(example_topology: Topology) -> Rendered:
    return render(example_topology)


@pytest.fixture(scope="session")
def tfvars(rendered: Rendered) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(rendered.files["terraform.tfvars.json"])
    return data


@pytest.fixture(scope="session")
def manifests(
    rendered: Rendered, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, list[dict[str, Any]]]:
    """`helm template` of the chart over each region's rendered values: region -> docs.
    The YAML text of each region is also written to <tmp>/<region>.yaml for the CLIs."""
    out = tmp_path_factory.mktemp("manifests")
    docs: dict[str, list[dict[str, Any]]] = {}
    for rel, text in rendered.files.items():
        if not rel.startswith("helm/"):
            continue
        region = Path(rel).name.removesuffix(".values.yaml")
        values = out / f"{region}.values.yaml"
        values.write_text(text)
        result = helm_template(values, f"homeport-{region}")
        assert result.returncode == 0, f"helm template failed for {region}:\n{result.stderr}"
        (out / f"{region}.yaml").write_text(result.stdout)
        docs[region] = [d for d in yaml.safe_load_all(result.stdout) if d]
    return docs


@pytest.fixture(scope="session")
def manifest_dir(manifests: dict[str, list[dict[str, Any]]], tmp_path_factory: Any) -> Path:
    """A directory holding one YAML file of manifests per region (for checkov)."""
    out: Path = tmp_path_factory.mktemp("manifest-dir")
    for region, docs in manifests.items():
        (out / f"{region}.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return out
