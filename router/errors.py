"""How failures cross the wire: the one table from domain error code to gRPC status, and
the errors the SDK raises when it reads a status back.

Server side, a `core.errors.HomeportError` becomes a `google.rpc.Status` whose code comes
from `ERROR_TABLE` and whose details are rich error details:

- always a `google.rpc.ErrorInfo` with `reason` = the domain code (e.g. `WRONG_REGION`),
  `domain` = `homeport`, and the error's fields as metadata (for WRONG_REGION and FENCED:
  `owner_region`, `epoch`, `gateway`, ...);
- for INVALID_ARGUMENT also a `google.rpc.BadRequest` with one field violation.

Client side, the SDK raises these, chosen by ErrorInfo.reason (or by status code for
failures that never reached the servicer, such as UNAUTHENTICATED from the interceptor)::

    GatewayError                 any failed call; .status, .reason, .metadata, .violations
    ├── InvalidRequest           INVALID_ARGUMENT: .violations name the field and reason
    ├── Misrouted                FAILED_PRECONDITION: the key lives elsewhere; .redirect
    │   ├── WrongRegionError     WRONG_REGION
    │   └── FencedError          FENCED
    ├── TaskNotFoundError        NOT_FOUND
    ├── AlreadyFinishedError     FAILED_PRECONDITION, ALREADY_FINISHED
    ├── NotAllowed               UNAUTHENTICATED or PERMISSION_DENIED
    └── RetryableError           the outcome is unknown or transient; resend the same id
        ├── NotReplicatedError   UNAVAILABLE, NOT_REPLICATED
        └── TransientError       UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ...
    BackendFailedError           INTERNAL, BACKEND_FAILED: a server refused a command

RESOURCE_EXHAUSTED (a Redis out of memory) also carries a `google.rpc.RetryInfo` with the
delay to wait before resending.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from homeport.core.errors import ErrorCode, HomeportError, InvalidArgument, ResourceExhausted
from homeport.router.routing import Redirect

DOMAIN = "homeport"
_MAX_VALUE_CHARS = 200


class GatewayError(HomeportError):
    """A gateway call failed. `reason` is the domain code when the gateway gave one."""

    def __init__(
        self,
        status: grpc.StatusCode,
        message: str,
        reason: str = "",
        metadata: Mapping[str, str] | None = None,
        violations: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(f"{status.name}: {message}")
        self.status = status
        self.message = message
        self.reason = reason
        self.metadata = dict(metadata or {})
        self.violations = list(violations)
        # The gateway's domain code when it gave one, so `code` means the same as for the
        # engine's errors; a transport failure with no code is UNAVAILABLE.
        self.code = ErrorCode(reason) if reason in ErrorCode.__members__ else ErrorCode.UNAVAILABLE


class InvalidRequest(GatewayError):
    """The request was refused before anything was written; fix the named field."""

    @property
    def field(self) -> str:
        return self.violations[0][0] if self.violations else self.metadata.get("field", "")


class Misrouted(GatewayError):
    """The key's partition is served by another region; follow `redirect`."""

    @property
    def redirect(self) -> Redirect:
        epoch = self.metadata.get("current_epoch") or self.metadata.get("epoch") or "0"
        return Redirect(
            key=self.metadata.get("key", ""),
            owner_region=self.metadata.get("owner_region", ""),
            epoch=int(epoch) if epoch.isdigit() else 0,
            gateway=self.metadata.get("gateway", ""),
        )


class WrongRegionError(Misrouted):
    pass


class FencedError(Misrouted):
    pass


class TaskNotFoundError(GatewayError):
    pass


class AlreadyFinishedError(GatewayError):
    pass


class NotAllowed(GatewayError):
    """Missing or wrong token, or an admin RPC called without an admin token."""


class RetryableError(GatewayError):
    """The call may or may not have taken effect; resending with the same task id is safe."""


class NotReplicatedError(RetryableError):
    pass


class BackendFailedError(GatewayError):
    """A backing server refused the command (not a transient failure)."""


class TransientError(RetryableError):
    pass


@dataclass(frozen=True)
class ErrorMapping:
    status: grpc.StatusCode
    client_error: type[GatewayError]


# The one table from domain code to wire status. tests/router/test_errors.py checks that
# every ErrorCode has a row.
ERROR_TABLE: Mapping[ErrorCode, ErrorMapping] = {
    ErrorCode.INVALID_ARGUMENT: ErrorMapping(grpc.StatusCode.INVALID_ARGUMENT, InvalidRequest),
    ErrorCode.FENCED: ErrorMapping(grpc.StatusCode.FAILED_PRECONDITION, FencedError),
    ErrorCode.WRONG_REGION: ErrorMapping(grpc.StatusCode.FAILED_PRECONDITION, WrongRegionError),
    ErrorCode.NOT_REPLICATED: ErrorMapping(grpc.StatusCode.UNAVAILABLE, NotReplicatedError),
    ErrorCode.NOT_FOUND: ErrorMapping(grpc.StatusCode.NOT_FOUND, TaskNotFoundError),
    ErrorCode.ALREADY_FINISHED: ErrorMapping(
        grpc.StatusCode.FAILED_PRECONDITION, AlreadyFinishedError
    ),
    ErrorCode.UNAVAILABLE: ErrorMapping(grpc.StatusCode.UNAVAILABLE, TransientError),
    ErrorCode.RESOURCE_EXHAUSTED: ErrorMapping(grpc.StatusCode.RESOURCE_EXHAUSTED, TransientError),
    ErrorCode.BACKEND_FAILED: ErrorMapping(grpc.StatusCode.INTERNAL, BackendFailedError),
}

# Failures raised by grpc itself or the interceptors, which carry no ErrorInfo.
_BY_STATUS: Mapping[grpc.StatusCode, type[GatewayError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidRequest,
    grpc.StatusCode.NOT_FOUND: TaskNotFoundError,
    grpc.StatusCode.UNAUTHENTICATED: NotAllowed,
    grpc.StatusCode.PERMISSION_DENIED: NotAllowed,
    grpc.StatusCode.UNAVAILABLE: TransientError,
    grpc.StatusCode.DEADLINE_EXCEEDED: TransientError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: TransientError,
    grpc.StatusCode.ABORTED: TransientError,
}


def _shown(value: object) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 3] + "..."


def _error_metadata(exc: HomeportError, hints: Mapping[str, str]) -> dict[str, str]:
    fields = {
        name: _shown(value)
        for name, value in vars(exc).items()
        if not name.startswith("_") and isinstance(value, str | int | bytes | float | bool)
    }
    fields.update(hints)
    return fields


def _pack(
    message: error_details_pb2.ErrorInfo
    | error_details_pb2.BadRequest
    | error_details_pb2.RetryInfo,
) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def to_rpc_status(exc: HomeportError, hints: Mapping[str, str] | None = None) -> status_pb2.Status:
    """The google.rpc.Status for a domain error; `hints` add metadata the error itself does
    not know (e.g. the owner's gateway address for FENCED)."""
    mapping = ERROR_TABLE[exc.code]
    info = error_details_pb2.ErrorInfo(
        reason=exc.code.value, domain=DOMAIN, metadata=_error_metadata(exc, hints or {})
    )
    details = [_pack(info)]
    if isinstance(exc, InvalidArgument):
        violation = error_details_pb2.BadRequest.FieldViolation(
            field=exc.field, description=exc.reason
        )
        details.append(_pack(error_details_pb2.BadRequest(field_violations=[violation])))
    if isinstance(exc, ResourceExhausted):
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromMilliseconds(exc.retry_after_ms)
        details.append(_pack(retry))
    return status_pb2.Status(code=mapping.status.value[0], message=str(exc), details=details)


def status_code_of(status: status_pb2.Status) -> grpc.StatusCode:
    for code in grpc.StatusCode:
        if code.value[0] == status.code:
            return code
    return grpc.StatusCode.UNKNOWN


def from_rpc_status(status: status_pb2.Status) -> GatewayError:
    """The SDK error for a rich status (also used for per-task errors of a batch)."""
    code = status_code_of(status)
    reason = ""
    metadata: dict[str, str] = {}
    violations: list[tuple[str, str]] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason, metadata = info.reason, dict(info.metadata)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations = [(v.field, v.description) for v in bad.field_violations]
    cls: type[GatewayError] = _BY_STATUS.get(code, GatewayError)
    if reason in ErrorCode.__members__:
        cls = ERROR_TABLE[ErrorCode(reason)].client_error
    return cls(code, status.message, reason, metadata, violations)


def from_rpc_error(err: grpc.RpcError) -> GatewayError:
    """The SDK error for a failed call, rich details included when the gateway sent them
    (read with grpcio-status, which also checks they match the call's status)."""
    try:
        rich = rpc_status.from_call(cast(grpc.Call, err))
    except ValueError:
        rich = None  # a proxy rewrote the status; fall back to the bare code
    if rich is not None:
        return from_rpc_status(rich)
    code = err.code()
    return _BY_STATUS.get(code, GatewayError)(code, err.details() or "")
