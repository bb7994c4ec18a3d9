"""Every PromQL expression the project ships, and the checks run on them.

- `expressions()` gathers them from the rule files (`deploy/prometheus/*.rules.yml`) and
  the committed dashboards (`deploy/grafana/*.json`), template variables replaced;
- `promtool_errors()` parses them with the real promtool: each goes into a throwaway
  rules file as a recording rule, and `promtool check rules` judges the file;
- `metric_names()` reads the metric names an expression selects from its syntax tree
  (promql-parser), so they can be compared with what the processes export
  (`exported_names()` of their /metrics pages).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import promql_parser
import yaml
from homeport.observe.panels import substitute
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parent.parent
RULES_DIR = REPO / "deploy" / "prometheus"
DASHBOARDS_DIR = REPO / "deploy" / "grafana"
# Series Prometheus makes itself rather than scraping: `up` per target, `ALERTS`.
SYNTHETIC = frozenset({"up", "ALERTS", "ALERTS_FOR_STATE"})


@dataclass(frozen=True)
class Expression:
    where: str  # "alerts.rules.yml: alert HomeUnserved", "overview.json: panel 'x'"
    expr: str


def rule_files(rules_dir: Path = RULES_DIR) -> list[Path]:
    return sorted(rules_dir.glob("*.rules.yml"))


def _rules(rules_dir: Path) -> Iterable[tuple[Path, dict[str, str]]]:
    for path in rule_files(rules_dir):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                yield path, rule


def recorded_names(rules_dir: Path = RULES_DIR) -> set[str]:
    """Series the recording rules make (dashboards and alerts may use them)."""
    return {rule["record"] for _, rule in _rules(rules_dir) if "record" in rule}


def expressions(
    rules_dir: Path = RULES_DIR, dashboards_dir: Path = DASHBOARDS_DIR
) -> list[Expression]:
    found = [
        Expression(f"{path.name}: {'alert' if 'alert' in rule else 'record'} "
                   f"{rule.get('alert') or rule.get('record')}", str(rule["expr"]))
        for path, rule in _rules(rules_dir)
    ]  # fmt: skip
    for path in sorted(dashboards_dir.glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board.get("panels", []):
            for target in panel.get("targets", []):
                found.append(Expression(f"{path.name}: panel {panel['title']!r}", target["expr"]))
        for variable in board.get("templating", {}).get("list", []):
            query = variable.get("query", "")
            if variable.get("type") == "query" and query.startswith("label_values("):
                # label_values(metric, label) is Grafana's, not PromQL: check the metric.
                metric = query.removeprefix("label_values(").split(",")[0].strip()
                found.append(Expression(f"{path.name}: variable {variable['name']}", metric))
    return [Expression(e.where, substitute(e.expr)) for e in found]


def promtool() -> str:
    """The promtool binary: `HOMEPORT_PROMTOOL`, then PATH, then `.tools/bin`."""
    override = os.environ.get("HOMEPORT_PROMTOOL")
    if override:
        return override
    found = shutil.which("promtool") or str(REPO / ".tools" / "bin" / "promtool")
    if not Path(found).exists():
        raise FileNotFoundError(f"promtool not found at {found}: run scripts/install.sh")
    return found


def _check(exprs: list[str], binary: str) -> subprocess.CompletedProcess[str]:
    rules = {
        "groups": [
            {"name": f"expr-{i}", "rules": [{"record": f"check:expr_{i}", "expr": e}]}
            for i, e in enumerate(exprs)
        ]
    }
    with tempfile.TemporaryDirectory(prefix="homeport-promql-") as tmp:
        path = Path(tmp) / "exprs.rules.yml"
        path.write_text(yaml.safe_dump(rules))
        return subprocess.run(
            [binary, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
        )


def promtool_errors(found: list[Expression], binary: str | None = None) -> dict[str, str]:
    """`where -> promtool's complaint` for every expression promtool cannot parse."""
    binary = binary or promtool()
    if not found or _check([e.expr for e in found], binary).returncode == 0:
        return {}
    errors = {}
    for e in found:  # slow path, only on failure: name the culprits one by one
        result = _check([e.expr], binary)
        if result.returncode != 0:
            errors[e.where] = (result.stdout + result.stderr).strip()
    return errors or {"(all)": "promtool refused the file but no single expression"}


def metric_names(expr: str) -> set[str]:
    """Metric names the expression selects. A selector without a name is refused: its
    series could not be checked against what is exported."""
    names: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            if not node.name:
                raise ValueError(f"{expr!r}: a selector without a metric name")
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def exported_names(exposition: str) -> set[str]:
    """Every series name a /metrics page declares, including those of labelled
    metrics that have no sample yet (a counter first incremented on a rare event)."""
    names: set[str] = set()
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("_count", "_sum", "_created"),
    }
    for family in text_string_to_metric_families(exposition):
        names.add(family.name)
        names.update(family.name + s for s in suffixes.get(family.type, ()))
        names.update(sample.name for sample in family.samples)
    return names


def unexported(
    found: list[Expression], exported: set[str], recorded: set[str]
) -> dict[str, set[str]]:
    """`where -> names` of metrics an expression selects that nothing provides."""
    missing: dict[str, set[str]] = {}
    for e in found:
        absent = metric_names(e.expr) - exported - recorded - SYNTHETIC
        if absent:
            missing.setdefault(e.where, set()).update(absent)
    return missing
