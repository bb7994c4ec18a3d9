"""The Prometheus rules, judged by the real promtool (built by scripts/install.sh):
every rule file passes `promtool check rules`, the unit tests in
deploy/prometheus/tests/ pass `promtool test rules`, every alert has a case where it
fires and one where it stays silent, and every alert links to a runbook that exists."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from homeport.observe.queries import (
    REPO,
    RULES_DIR,
    Expression,
    promtool,
    promtool_errors,
    rule_files,
)

TESTS_DIR = RULES_DIR / "tests"
SEVERITIES = {"page", "ticket", "info"}


def _alerts() -> dict[str, dict[str, object]]:
    out = {}
    for path in rule_files():
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    out[rule["alert"]] = rule
    return out


def _cases() -> list[dict[str, object]]:
    cases = []
    for path in sorted(TESTS_DIR.glob("*.test.yml")):
        for test in yaml.safe_load(path.read_text())["tests"]:
            cases.extend(test.get("alert_rule_test", []))
    return cases


def test_every_rule_file_passes_promtool_check() -> None:
    files = rule_files()
    assert {p.name for p in files} >= {"alerts.rules.yml", "recording.rules.yml"}
    for path in files:
        result = subprocess.run(
            [promtool(), "check", "rules", str(path)], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    tests = sorted(str(p) for p in TESTS_DIR.glob("*.test.yml"))
    assert len(tests) >= 2
    result = subprocess.run([promtool(), "test", "rules", *tests], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_wrong_expectation_fails_promtool(tmp_path: Path) -> None:
    """The harness can fail: expecting HomeUnserved where the home is served must not pass."""
    shutil.copy(RULES_DIR / "alerts.rules.yml", tmp_path / "alerts.rules.yml")
    case = {
        "rule_files": ["alerts.rules.yml"],
        "evaluation_interval": "1s",
        "tests": [
            {
                "interval": "1s",
                "input_series": [
                    {"series": 'homeport_route_epoch{home="us-east"}', "values": "1x30"},
                    {"series": 'homeport_owned_partitions{region="us-east"}', "values": "16x30"},
                ],
                "alert_rule_test": [
                    {"eval_time": "20s", "alertname": "HomeUnserved",
                     "exp_alerts": [{"exp_labels": {"severity": "page", "home": "us-east"}}]}
                ],
            }
        ],
    }  # fmt: skip
    (tmp_path / "wrong.test.yml").write_text(yaml.safe_dump(case))
    result = subprocess.run(
        [promtool(), "test", "rules", str(tmp_path / "wrong.test.yml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "HomeUnserved" in result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_silent_case() -> None:
    cases = _cases()
    for name in _alerts():
        mine = [c for c in cases if c["alertname"] == name]
        assert any(c.get("exp_alerts") for c in mine), f"{name}: no case where it fires"
        assert any(not c.get("exp_alerts") for c in mine), f"{name}: no case where it is silent"
    assert {c["alertname"] for c in cases} <= set(_alerts()), "a test names an unknown alert"


REQUIRED = {
    "HomeUnserved", "HomeFailedOver", "MirrorLagAboveRPO", "OldestTaskAboveSLO",
    "DeadLettersGrowing", "RecordsNotWritten", "EtcdQuorumAtRisk", "GlobalSubmitsRefused",
    "WorkersSaturated",
}  # fmt: skip


def test_the_alerts_the_issue_asks_for_exist() -> None:
    assert REQUIRED <= set(_alerts())


@pytest.mark.parametrize("name", sorted(_alerts()))
def test_alert_has_severity_summary_and_a_runbook_that_exists(name: str) -> None:
    rule = _alerts()[name]
    labels, notes = rule["labels"], rule["annotations"]
    assert isinstance(labels, dict) and isinstance(notes, dict)
    assert labels.get("severity") in SEVERITIES
    assert notes.get("summary")
    doc, _, anchor = str(notes["runbook_url"]).partition("#")
    assert doc in ("docs/deploy.md", "docs/multi-region.md"), doc
    headings = re.findall(r"^#+ (.+)$", (REPO / doc).read_text(), re.MULTILINE)
    slugs = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in headings}
    assert anchor in slugs, f"{name}: no heading for #{anchor} in {doc}"


def test_promtool_parse_check_names_a_broken_expression() -> None:
    found = [
        Expression("good", "sum by (region) (rate(homeport_enqueued_total[1m]))"),
        Expression("bad", "sum by (region) (rate(homeport_enqueued_total[1m])"),
    ]
    errors = promtool_errors(found)
    assert set(errors) == {"bad"}
