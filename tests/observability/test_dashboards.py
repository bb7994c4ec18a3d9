"""The dashboards are generated, not edited: the committed JSON equals a fresh
generation. Every PromQL expression of the dashboards and the rules parses with
promtool, and the metric-name reader used by the export check cannot be fooled."""

from __future__ import annotations

import pytest
from homeport.observe.dashboards import render_all
from homeport.observe.queries import (
    DASHBOARDS_DIR,
    Expression,
    expressions,
    metric_names,
    promtool_errors,
    recorded_names,
    unexported,
)


def test_committed_dashboards_equal_a_fresh_generation() -> None:
    fresh = render_all()
    assert set(fresh) == {p.name for p in DASHBOARDS_DIR.glob("*.json")}
    for name, text in fresh.items():
        assert (DASHBOARDS_DIR / name).read_text() == text, (
            f"deploy/grafana/{name} differs from the generator's output: "
            "run `homeport observe dashboards` and commit the result"
        )


def test_every_expression_of_dashboards_and_rules_parses_with_promtool() -> None:
    found = expressions()
    wheres = {e.where.split(":")[0] for e in found}
    assert wheres == {"alerts.rules.yml", "recording.rules.yml", "overview.json", "region.json"}
    assert len(found) >= 50
    assert promtool_errors(found) == {}


def test_metric_names_come_from_the_syntax_tree() -> None:
    expr = (
        'sum by (region) (rate(a_total{region="x"}[1m])) / on (region) '
        "histogram_quantile(0.99, sum by (le) (rate(b_bucket[5m]))) and c unless d:rec"
    )
    assert metric_names(expr) == {"a_total", "b_bucket", "c", "d:rec"}
    with pytest.raises(ValueError, match="without a metric name"):
        metric_names('{region="x"}')


def test_an_unexported_name_is_reported() -> None:
    found = [Expression("panel", "homeport_enqueued_total + homeport_no_such_metric")]
    assert unexported(found, {"homeport_enqueued_total"}, recorded_names()) == {
        "panel": {"homeport_no_such_metric"}
    }
