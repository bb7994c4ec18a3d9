"""Observability as code: Grafana dashboards generated from Python, checks that every
PromQL expression of the dashboards and of the Prometheus rules parses and names only
metrics the processes export, and a rendering of the overview from real data.

The rules live in `deploy/prometheus/`, the generated dashboards in `deploy/grafana/`
(`homeport observe dashboards`); docs/observability.md explains both.
"""
