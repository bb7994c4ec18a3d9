"""The one error table: every domain code maps to a status, and rich details round-trip."""

from __future__ import annotations

import grpc
import pytest
from homeport.core.errors import (
    ErrorCode,
    Fenced,
    HomeportError,
    InvalidArgument,
    NotReplicated,
    TaskNotFound,
    WrongRegion,
)
from homeport.router.errors import (
    ERROR_TABLE,
    FencedError,
    InvalidRequest,
    NotReplicatedError,
    TaskNotFoundError,
    WrongRegionError,
    from_rpc_status,
    status_code_of,
    to_rpc_status,
)


def test_every_domain_code_has_a_row() -> None:
    assert set(ERROR_TABLE) == set(ErrorCode)


@pytest.mark.parametrize(
    ("error", "status", "client_error"),
    [
        (
            InvalidArgument("task.kind", "", "must not be empty"),
            grpc.StatusCode.INVALID_ARGUMENT,
            InvalidRequest,
        ),
        (
            WrongRegion("eu:1", "eu-west", 7, "127.0.0.1:7001"),
            grpc.StatusCode.FAILED_PRECONDITION,
            WrongRegionError,
        ),
        (Fenced("us-east/3", 4, 5), grpc.StatusCode.FAILED_PRECONDITION, FencedError),
        (NotReplicated(2, 1), grpc.StatusCode.UNAVAILABLE, NotReplicatedError),
        (TaskNotFound("01J"), grpc.StatusCode.NOT_FOUND, TaskNotFoundError),
    ],
)
def test_domain_error_round_trips_through_rich_status(
    error: HomeportError, status: grpc.StatusCode, client_error: type[Exception]
) -> None:
    wire = to_rpc_status(error)
    assert status_code_of(wire) == status
    back = from_rpc_status(wire)
    assert type(back) is client_error
    assert back.reason == error.code.value
    assert back.message == str(error)


def test_invalid_argument_names_the_field_in_bad_request() -> None:
    back = from_rpc_status(to_rpc_status(InvalidArgument("tasks[3].payload", b"x", "too big")))
    assert isinstance(back, InvalidRequest)
    assert back.violations == [("tasks[3].payload", "too big")]
    assert back.field == "tasks[3].payload"


def test_wrong_region_details_name_owner_epoch_and_gateway() -> None:
    back = from_rpc_status(to_rpc_status(WrongRegion("eu:1", "eu-west", 7, "127.0.0.1:7001")))
    assert isinstance(back, WrongRegionError)
    assert back.redirect.owner_region == "eu-west"
    assert back.redirect.epoch == 7
    assert back.redirect.gateway == "127.0.0.1:7001"
    assert back.redirect.key == "eu:1"


def test_fenced_details_carry_hints_from_the_serving_check() -> None:
    hints = {"owner_region": "us-west", "gateway": "127.0.0.1:7002"}
    back = from_rpc_status(to_rpc_status(Fenced("us-east/3", 4, 5), hints))
    assert isinstance(back, FencedError)
    assert back.metadata["partition"] == "us-east/3"
    assert back.redirect.epoch == 5
    assert back.redirect.gateway == "127.0.0.1:7002"
