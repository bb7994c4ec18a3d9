"""terraform/, checked offline: hclfmt formatting, python-hcl2 parsing, checkov, and
structural rules on the parsed HCL against the rendered example.

No Terraform or OpenTofu binary exists here (their go.mod files carry replace directives,
so `go install` cannot build them) and no provider can be downloaded, so `terraform
validate` cannot run; hclfmt is the formatter terraform fmt is built on.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import hcl2
import pytest
from hcl2 import SerializationOptions
from homeport.regions.render import PROVIDER_SLOTS

from tests.deploy.conftest import TERRAFORM, checkov, run, tool

TF_FILES = sorted(TERRAFORM.rglob("*.tf"))
MODULES = sorted({p.parent for p in TERRAFORM.glob("modules/**/*.tf")})
ENV = TERRAFORM / "envs" / "prod"

# Every checkov check skipped on terraform/, with the reason it does not apply.
TERRAFORM_SKIPS = {
    "CKV_AWS_18": "the access-log bucket is not itself access-logged (that would recurse)",
    "CKV_AWS_144": "load-balancer access logs need no cross-region replica",
    "CKV_AWS_145": "the ELB log writer supports SSE-S3 only, not KMS keys",
    "CKV2_AWS_62": "nothing consumes event notifications of the access-log bucket",
}


def _parse(path: Path) -> dict[str, Any]:
    with path.open() as fh:
        data: dict[str, Any] = hcl2.load(
            fh,
            serialization_options=SerializationOptions(
                strip_string_quotes=True, explicit_blocks=False
            ),
        )
    return data


def _blocks(kind: str, directory: Path) -> dict[str, dict[str, Any]]:
    """Blocks of one kind with one label (variable, output, module, ...) of a directory."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.tf")):
        for block in _parse(path).get(kind, []):
            out.update(block)
    return out


def test_there_is_terraform_to_check() -> None:
    assert len(TF_FILES) >= 15 and len(MODULES) >= 3, (TF_FILES, MODULES)


@pytest.mark.parametrize("path", TF_FILES, ids=lambda p: str(p.relative_to(TERRAFORM)))
def test_hclfmt_finds_nothing_to_change(path: Path) -> None:
    result = run([tool("hclfmt"), "-require-no-change", str(path)])
    assert result.returncode == 0, f"{path} is not formatted: run .tools/bin/hclfmt -w {path}"


def test_hclfmt_rejects_an_unformatted_file(tmp_path: Path) -> None:
    """The format check can fail: the formatter flags a file it would change."""
    bad = tmp_path / "bad.tf"
    bad.write_text('variable "x" {\ntype=string\n}\n')
    assert run([tool("hclfmt"), "-require-no-change", str(bad)]).returncode != 0


@pytest.mark.parametrize("path", TF_FILES, ids=lambda p: str(p.relative_to(TERRAFORM)))
def test_python_hcl2_parses(path: Path) -> None:
    assert _parse(path), f"{path} parsed to nothing"


@pytest.mark.parametrize("module", [*MODULES, ENV], ids=lambda p: str(p.relative_to(TERRAFORM)))
def test_variables_are_typed_and_described_and_outputs_described(module: Path) -> None:
    for name, body in _blocks("variable", module).items():
        assert "type" in body, f"{module}: variable {name} has no type"
        assert body.get("description"), f"{module}: variable {name} has no description"
    outputs = _blocks("output", module)
    assert outputs, f"{module} has no outputs"
    for name, body in outputs.items():
        assert body.get("description"), f"{module}: output {name} has no description"


@pytest.mark.parametrize("module", MODULES, ids=lambda p: str(p.relative_to(TERRAFORM)))
def test_every_module_has_a_readme(module: Path) -> None:
    readme = module / "README.md"
    assert readme.is_file() and len(readme.read_text()) > 200, f"{readme} is missing or empty"


def _slot_modules(source: str) -> dict[str, tuple[str, str]]:
    """Module blocks of the env root with `source`: name -> (cloud region, provider)."""
    out = {}
    for name, body in _blocks("module", ENV).items():
        if body["source"] != source:
            continue
        match = re.fullmatch(r'\$\{local\.by_cloud\["([a-z0-9-]+)"\]\}', body["for_each"])
        assert match, f'module {name}: for_each must be local.by_cloud["<cloud region>"]'
        out[name] = (match[1], body["providers"]["aws"])
    return out


def _providers() -> dict[str, str]:
    """alias -> cloud region of the env root's aliased providers."""
    out = {}
    for block in _parse(ENV / "providers.tf")["provider"]:
        for body in [block["aws"]]:
            if "alias" in body:
                out[body["alias"]] = body["region"]
    return out


def test_provider_slots_agree_with_the_renderer() -> None:
    assert _providers() == {slot: cloud for cloud, slot in PROVIDER_SLOTS.items()}
    variables = (ENV / "variables.tf").read_text()
    for cloud in PROVIDER_SLOTS:
        assert f'"{cloud}"' in variables, f"{cloud} missing from the regions validation"


@pytest.mark.parametrize(
    "source",
    ["../../modules/region", "../../modules/interconnect"],
)
def test_each_slot_block_uses_its_own_cloud_regions_provider(source: str) -> None:
    providers = _providers()
    blocks = _slot_modules(source)
    assert blocks
    for name, (cloud, provider) in blocks.items():
        alias = provider.removeprefix("${aws.").removesuffix("}")
        assert providers.get(alias) == cloud, f"module {name}: {provider} is not in {cloud}"


def test_every_topology_region_yields_exactly_one_region_module_instance(
    tfvars: dict[str, Any],
) -> None:
    by_cloud = _parse(ENV / "main.tf")["locals"][0]["by_cloud"]
    assert "r.cloud_region == c" in by_cloud, f"by_cloud no longer groups by cloud: {by_cloud}"
    blocks = _slot_modules("../../modules/region")
    instances: dict[str, list[str]] = {}
    for block, (cloud, _) in blocks.items():
        for name, region in tfvars["regions"].items():
            if region["cloud_region"] == cloud:
                instances.setdefault(name, []).append(f"module.{block}[{name!r}]")
    for name in tfvars["regions"]:
        assert len(instances.get(name, [])) == 1, f"{name}: instances {instances.get(name)}"


def _mesh(names: list[str]) -> set[tuple[str, str]]:
    """The pairs the interconnect joins: a opens to b when a < b, b accepts from a < b."""
    locals_ = _parse(TERRAFORM / "modules" / "interconnect" / "main.tf")["locals"][0]
    assert "n > var.name" in locals_["request_peers"], locals_["request_peers"]
    assert "n < var.name" in locals_["accept_peers"], locals_["accept_peers"]
    opened = {(a, b) for a in names for b in names if b > a}
    accepted = {(a, b) for b in names for a in names if a < b}
    return opened & accepted


def test_every_mirror_link_has_a_network_path(tfvars: dict[str, Any]) -> None:
    mesh = _mesh(sorted(tfvars["regions"]))
    assert tfvars["mirror_links"], "no mirror links rendered"
    for link in tfvars["mirror_links"]:
        pair = tuple(sorted((link["home"], link["standby"])))
        assert pair in mesh, f"mirror {link} has no peering"
        standby = tfvars["regions"][link["standby"]]
        assert any(m["home"] == link["home"] for m in standby["mirrors"]), (
            f"{link['standby']} does not host {link['home']}'s mirror"
        )
    # The endpoint admits the other regions' ranges: the mirror's replication reaches it.
    main = (ENV / "main.tf").read_text()
    assert "o.cidr if m != n" in main


def test_checkov_passes_on_terraform() -> None:
    passed, failed = checkov(TERRAFORM, "terraform", TERRAFORM_SKIPS)
    assert passed > 20, f"checkov ran only {passed} checks"
    assert not failed, "checkov failed:\n" + "\n".join(failed)
