"""What the dashboards show, as plain data: one `Panel` per chart, grouped in rows.

Kept apart from the Grafana builder (`observe.dashboards`) so the PNG rendering
(`observe.render`) draws the very same queries from real data. Per-home series carry the
label `region` (the home of the partitions); `site` is the region a gateway runs in;
routing gauges are exported by every agent, hence `max by (home)`.
"""

from __future__ import annotations

from dataclasses import dataclass

# The per-region dashboard's variable; substituted by a real region in checks.
REGION_VAR = "$region"
# Grafana variables and what a check or a rendering puts in their place.
VARIABLES = {REGION_VAR: "us-east", "${datasource}": "prometheus", "$__rate_interval": "1m"}


def substitute(expr: str) -> str:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    return expr


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[Query, ...]
    unit: str = "short"
    description: str = ""


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


def _q(expr: str, legend: str) -> Query:
    return Query(expr, legend)


OVERVIEW: tuple[Row, ...] = (
    Row(
        "Routing",
        (
            Panel(
                "Epoch of each home's route",
                (_q("max by (home) (homeport_route_epoch)", "{{home}}"),),
                description="Bumped by every promotion and failback.",
            ),
            Panel(
                "Serving region of each home",
                (
                    _q(
                        "max by (home, region) (homeport_route_serving)",
                        "{{home}} served by {{region}}",
                    ),
                ),
                description="One line per (home, serving region); a failover moves the line.",
            ),
            Panel(
                "Partitions owned by live workers, per home",
                (_q("sum by (region) (homeport_owned_partitions)", "{{region}}"),),
                description="0 or no line: the home is served by no one.",
            ),
        ),
    ),
    Row(
        "Submit",
        (
            Panel(
                "Submit calls per second, per gateway region",
                (_q("homeport:gateway_submit:rate1m", "{{site}}"),),
                unit="reqps",
            ),
            Panel(
                "Submit p99, per gateway region",
                (_q("homeport:gateway_submit_duration_seconds:p99_1m", "{{site}}"),),
                unit="s",
            ),
            Panel(
                "Tasks enqueued per second, per home",
                (_q("homeport:enqueued:rate1m", "{{region}}"),),
                unit="ops",
            ),
        ),
    ),
    Row(
        "Backlog",
        (
            Panel(
                "Oldest waiting task, per home",
                (_q("homeport:oldest_waiting_age_seconds:max", "{{region}}"),),
                unit="s",
                description="Alert OldestTaskAboveSLO above 30 s for 1 min.",
            ),
            Panel(
                "Backlog (undelivered tasks), per home",
                (_q("homeport:backlog:sum", "{{region}}"),),
            ),
            Panel(
                "Start latency p99, per home",
                (_q("homeport:end_to_end_latency_seconds:p99_1m", "{{region}}"),),
                unit="s",
            ),
        ),
    ),
    Row(
        "Replication and failover",
        (
            Panel(
                "Mirror lag (RPO of LOCAL and REGION)",
                (
                    _q(
                        "max by (home, standby) (homeport_mirror_lag_seconds)",
                        "{{home}} in {{standby}}",
                    ),
                ),
                unit="s",
                description="Alert MirrorLagAboveRPO above 5 s for 30 s.",
            ),
            Panel(
                "Mirror lag in bytes",
                (
                    _q(
                        "max by (home, standby) (homeport_mirror_lag_bytes)",
                        "{{home}} in {{standby}}",
                    ),
                ),
                unit="bytes",
            ),
            Panel(
                "Failovers and failbacks (5 min)",
                (
                    _q(
                        "sum by (home) (increase(homeport_promotions_total[5m]))",
                        "failover {{home}}",
                    ),
                    _q(
                        "max by (home) (increase(homeport_failbacks_total[5m]))",
                        "failback {{home}}",
                    ),
                    _q("max by (home) (homeport_route_failed_over)", "away from home {{home}}"),
                ),
                description="'away from home' is 1 while the home is failed over.",
            ),
        ),
    ),
    Row(
        "Trouble",
        (
            Panel(
                "Dead letters, duplicates, fenced writes per second",
                (
                    _q("homeport:dead:rate1m", "dead {{region}}"),
                    _q("homeport:duplicate_executions:rate1m", "duplicate {{region}}"),
                    _q("homeport:fenced:rate1m", "fenced {{region}}"),
                ),
                unit="ops",
            ),
            Panel(
                "Submits refused as NOT_REPLICATED",
                (_q("homeport:not_replicated:rate1m", "{{durability}} {{region}}"),),
                unit="ops",
            ),
            Panel(
                "Worker saturation and etcd members up",
                (
                    _q("homeport:worker_saturation:ratio", "saturation {{region}}"),
                    _q('sum(up{job="etcd"}) / count(up{job="etcd"})', "etcd members up"),
                ),
                unit="percentunit",
            ),
        ),
    ),
)

_R = f'region="{REGION_VAR}"'
# A worker's process-wide series (record lag, loop errors) belong to the region of its
# worker_slots series: `and on (instance)` keeps those of the chosen home's workers.
_OF_REGION = f"and on (instance) homeport_worker_slots{{{_R}}}"

REGION: tuple[Row, ...] = (
    Row(
        "Flow",
        (
            Panel(
                "Tasks per second",
                (
                    _q(f"homeport:enqueued:rate1m{{{_R}}}", "enqueued"),
                    _q(f"homeport:started:rate1m{{{_R}}}", "started"),
                    _q(f"homeport:succeeded:rate1m{{{_R}}}", "succeeded"),
                    _q(f"homeport:failed:rate1m{{{_R}}}", "failed"),
                ),
                unit="ops",
            ),
            Panel(
                "Start latency",
                (
                    _q(f"homeport:end_to_end_latency_seconds:p50_1m{{{_R}}}", "p50"),
                    _q(f"homeport:end_to_end_latency_seconds:p99_1m{{{_R}}}", "p99"),
                ),
                unit="s",
            ),
            Panel(
                "Worker saturation",
                (_q(f"homeport:worker_saturation:ratio{{{_R}}}", "inflight / slots"),),
                unit="percentunit",
            ),
        ),
    ),
    Row(
        "Partitions",
        (
            Panel(
                "Backlog per partition",
                (
                    _q(
                        f'sum by (partition) (homeport_queue_depth{{{_R}, state="ready"}})',
                        "{{partition}}",
                    ),
                ),
            ),
            Panel(
                "Oldest waiting task per partition",
                (
                    _q(
                        f"max by (partition) (homeport_oldest_waiting_age_seconds{{{_R}}})",
                        "{{partition}}",
                    ),
                ),
                unit="s",
            ),
            Panel(
                "Pending (delivered, unacked) per partition",
                (
                    _q(
                        f'sum by (partition) (homeport_queue_depth{{{_R}, state="pending"}})',
                        "{{partition}}",
                    ),
                ),
            ),
        ),
    ),
    Row(
        "Copies and records",
        (
            Panel(
                "Mirror lag of this home",
                (
                    _q(
                        f'max by (standby) (homeport_mirror_lag_seconds{{home="{REGION_VAR}"}})',
                        "{{standby}}",
                    ),
                ),
                unit="s",
            ),
            Panel(
                "Record writer lag per worker",
                (
                    _q(
                        f"max by (instance) (homeport_record_writer_lag_seconds {_OF_REGION})",
                        "{{instance}}",
                    ),
                ),
                unit="s",
            ),
            Panel(
                "Loop errors per second",
                (
                    _q(
                        f"sum by (loop) (rate(homeport_loop_errors_total[1m]) {_OF_REGION})",
                        "{{loop}}",
                    ),
                ),
                unit="ops",
            ),
        ),
    ),
)
