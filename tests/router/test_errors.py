"""The one error table: every domain code maps to a status, and rich details round-trip."""

from __future__ import annotations

import inspect

import grpc
import pytest
from homeport.core import errors as core_errors
from homeport.core.errors import (
    AlreadyFinished,
    BackendFailed,
    ErrorCode,
    Fenced,
    HomeportError,
    InvalidArgument,
    NotReplicated,
    ResourceExhausted,
    TaskNotFound,
    Unavailable,
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

# One instance of every engine error class, with realistic fields.
SAMPLES: list[HomeportError] = [
    InvalidArgument("task.kind", "", "must not be empty"),
    Fenced("us-east/3", 4, 5),
    WrongRegion("eu:1", "eu-west", 7, "127.0.0.1:7001"),
    NotReplicated(2, 1),
    TaskNotFound("01J"),
    AlreadyFinished("01J", "succeeded"),
    Unavailable("redis", "connection refused"),
    ResourceExhausted("redis", "OOM command not allowed when used memory > 'maxmemory'"),
    BackendFailed("redis", "WRONGTYPE Operation against a key holding the wrong kind"),
]


def test_every_engine_error_reaches_the_client_with_its_code_status_and_class() -> None:
    """Walks core.errors: a new engine error class without a sample here fails, and so
    does one whose code has no row, maps to another status, or comes back as another
    client class or code."""
    classes = {
        c for c in vars(core_errors).values()
        if inspect.isclass(c) and issubclass(c, HomeportError) and c is not HomeportError
        and not c.__name__.startswith("_")
    }  # fmt: skip
    assert {type(e) for e in SAMPLES} == classes, "add a sample of each new error class"
    assert {e.code for e in SAMPLES} == set(ErrorCode), "a code no error class raises"
    for error in SAMPLES:
        wire = to_rpc_status(error)
        back = from_rpc_status(wire)
        assert status_code_of(wire) == ERROR_TABLE[error.code].status, error
        assert type(back) is ERROR_TABLE[error.code].client_error, error
        assert back.code == error.code and back.message == str(error), error


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
