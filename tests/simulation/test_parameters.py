"""Bad parameters are refused before anything runs, with the field, value and fix."""

from __future__ import annotations

from typing import Any

import pytest
from homeport.simulation.capacity import RegionLoad
from homeport.simulation.durations import format_duration, parse_duration
from homeport.simulation.errors import EmptyTraceError, ParameterError, UnstableLoadError
from homeport.simulation.exports import load_export
from homeport.simulation.params import load_params
from homeport.simulation.queueing import MMc


def region(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "r",
        "arrivals": {"kind": "poisson", "rate_per_s": 100},
        "workers": 2,
        "concurrency": 1,
    }
    spec.update(changes)
    return spec


def params(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "service_time": {"kind": "exponential", "mean_s": 0.001},
        "regions": [region()],
    }
    data.update(changes)
    return data


def test_negative_rate_is_refused_naming_field_value_and_fix() -> None:
    with pytest.raises(ParameterError) as caught:
        load_params(params(regions=[region(arrivals={"kind": "poisson", "rate_per_s": -5})]))
    message = str(caught.value)
    assert "arrivals.rate_per_s" in message and "-5" in message and "tasks per second" in message


def test_negative_mean_service_is_refused() -> None:
    with pytest.raises(ParameterError, match=r"service_time\.mean_s=-0\.1"):
        load_params(params(service_time={"kind": "exponential", "mean_s": -0.1}))


def test_utilisation_of_one_or_more_without_a_bound_is_refused() -> None:
    overloaded = params(
        regions=[region(workers=1)], service_time={"kind": "exponential", "mean_s": 0.01}
    )  # 100/s x 10ms on 1 slot = 1.0
    with pytest.raises(UnstableLoadError) as caught:
        load_params(overloaded)
    assert "utilisation is 1.000" in str(caught.value)
    assert "duration_s or max_tasks" in caught.value.fix
    # bounding the run makes the overload a legitimate question
    assert load_params({**overloaded, "max_tasks": 1000}).max_tasks == 1000


def test_retries_count_towards_utilisation() -> None:
    busy = params(
        regions=[region(workers=1)],
        retries={"failure_probability": 0.2},
        service_time={"kind": "exponential", "mean_s": 0.009},
    )
    with pytest.raises(UnstableLoadError):
        load_params(busy)  # 0.9 utilisation x 1.25 attempts per task


def test_empty_trace_is_refused() -> None:
    with pytest.raises(EmptyTraceError, match="nothing to replay"):
        load_params(params(regions=[region(arrivals={"kind": "trace", "times_s": []})]))


def test_empty_empirical_distribution_is_refused() -> None:
    with pytest.raises(EmptyTraceError, match="at least one measurement"):
        load_params(params(service_time={"kind": "empirical", "samples_s": []}))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"regions": [region(workers=0)]}, "workers"),
        ({"regions": [region(standby="nowhere")]}, "standby"),
        ({"failover": {"region": "r", "at_s": 1}}, "standby"),
        ({"keys": {"hot_key_share": 1.5}}, "hot_key_share"),
        (
            {
                "regions": [
                    region(arrivals={"kind": "mmpp", "rates_per_s": [1], "mean_sojourn_s": [1]})
                ]
            },
            "rates_per_s",
        ),
        ({"regions": [region(arrivals={"kind": "poisson", "rate": 5})]}, "rate"),
    ],
)
def test_other_bad_parameters_name_their_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ParameterError, match=field):
        load_params(params(**change))


def test_durations_need_a_unit() -> None:
    assert parse_duration("50ms") == pytest.approx(0.05)
    assert parse_duration("2s") == 2.0
    assert parse_duration("1.5m") == 90.0
    assert parse_duration("250us") == pytest.approx(250e-6)
    with pytest.raises(ParameterError, match="followed by a unit"):
        parse_duration("50")
    assert format_duration(0.0123) == "12.3ms"


def test_analytic_queue_refuses_an_unstable_load() -> None:
    with pytest.raises(UnstableLoadError, match="more than 4.0 servers"):
        MMc(4.0, 1.0, 4)


def test_region_load_and_export_validate() -> None:
    with pytest.raises(ParameterError, match="workers"):
        RegionLoad("a", 100.0, 0)
    with pytest.raises(ParameterError, match="duration_s"):
        load_export({"duration_s": -1, "service_time_s": {"samples": [0.1]}})
    with pytest.raises(ParameterError, match="bounds"):
        load_export(
            {
                "duration_s": 1,
                "service_time_s": {"histogram": {"bounds_s": [0.1, 0.2], "counts": [1]}},
            }
        )
