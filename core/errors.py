"""Domain errors of the engine, and the one place where driver errors become them.

They hang under the one root, `homeport.errors.HomeportError` (re-exported here, with
`ErrorCode`), whose docstring draws the whole tree. The engine's part::

    HomeportError                 code          meaning
    ├── InvalidArgument           INVALID_ARGUMENT  bad input; nothing was written
    ├── Fenced                    FENCED            caller's epoch or lease token is stale
    ├── WrongRegion               WRONG_REGION      the key lives in another region (redirect)
    ├── NotReplicated             NOT_REPLICATED    WAIT reached fewer replicas than asked
    ├── TaskNotFound              NOT_FOUND         no record of that task id
    ├── AlreadyFinished           ALREADY_FINISHED  the task reached a final status already
    ├── Unavailable               UNAVAILABLE       Redis or PostgreSQL could not be reached
    ├── ResourceExhausted         RESOURCE_EXHAUSTED a server is out of memory; retry later
    └── BackendFailed             BACKEND_FAILED    a server refused a command for another reason

Every error carries a `code` (an `ErrorCode`); the gateway maps codes to gRPC statuses in
exactly one table, so a new error only needs a code here. Exceptions raised by redis-py or
asyncpg never cross the broker or store boundary: `core.broker.Broker` and
`core.store.RecordStore` turn them into domain errors with `raise ... from exc` (every
redis-py error: `core.broker.redis_error`).
"""

from __future__ import annotations

from homeport.errors import ErrorCode, HomeportError

__all__ = ["ErrorCode", "HomeportError"]  # the root and its codes, re-exported


class InvalidArgument(HomeportError):
    """A request field is malformed; the request was refused before anything was written."""

    code = ErrorCode.INVALID_ARGUMENT

    def __init__(self, field: str, value: object, reason: str) -> None:
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"invalid {field}={shown}: {reason}")
        self.field = field
        self.value = value
        self.reason = reason


class Fenced(HomeportError):
    """A write carried an epoch (or lease token) older than the partition's current one.

    It means another region (or worker) took the partition over; the caller must refresh
    its routing table (or drop the partition) and must not retry with the same epoch.
    """

    code = ErrorCode.FENCED

    def __init__(self, partition: str, epoch: int, current_epoch: int) -> None:
        super().__init__(
            f"partition {partition} is fenced: write carried epoch {epoch} but the current "
            f"epoch is {current_epoch}; refresh the routing table and resubmit"
        )
        self.partition = partition
        self.epoch = epoch
        self.current_epoch = current_epoch


class WrongRegion(HomeportError):
    """The key's partition is served by another region; like Redis Cluster's MOVED."""

    code = ErrorCode.WRONG_REGION

    def __init__(self, key: str, owner_region: str, epoch: int, gateway: str) -> None:
        super().__init__(
            f"key {key!r} is served by region {owner_region} (epoch {epoch}); "
            f"resend to gateway {gateway}"
        )
        self.key = key
        self.owner_region = owner_region
        self.epoch = epoch
        self.gateway = gateway


class NotReplicated(HomeportError):
    """WAIT saw fewer replica acks than the durability level needs; the task is unacked.

    The entry may still be in the primary's stream (and may run): the client must treat
    the submit as failed-unknown and resubmit with the same task id, which dedups.
    """

    code = ErrorCode.NOT_REPLICATED

    def __init__(self, wanted: int, acked: int) -> None:
        super().__init__(
            f"write reached {acked} replica(s) but {wanted} were required; the task is not "
            f"acknowledged, resubmit it with the same id (a replica may be down or lagging)"
        )
        self.wanted = wanted
        self.acked = acked


class TaskNotFound(HomeportError):
    """No record of this task id exists in the region's record store."""

    code = ErrorCode.NOT_FOUND

    def __init__(self, task_id: str) -> None:
        super().__init__(f"no task with id {task_id!r} is recorded in this region")
        self.task_id = task_id


class AlreadyFinished(HomeportError):
    """The operation needs an unfinished task, but it already reached a final status."""

    code = ErrorCode.ALREADY_FINISHED

    def __init__(self, task_id: str, status: str) -> None:
        super().__init__(f"task {task_id!r} already finished with status {status!r}")
        self.task_id = task_id
        self.status = status


class _ServerError(HomeportError):
    """A failure of a backing server: `what` (redis, postgresql) and its `detail`."""

    def __init__(self, what: str, detail: str, message: str) -> None:
        super().__init__(message)
        self.what = what
        self.detail = detail


class Unavailable(_ServerError):
    """A backing server (Redis, PostgreSQL) failed or could not be reached; retry later."""

    code = ErrorCode.UNAVAILABLE

    def __init__(self, what: str, detail: str) -> None:
        super().__init__(what, detail, f"{what} unavailable: {detail}")


class ResourceExhausted(_ServerError):
    """A backing server is out of a resource (Redis at `maxmemory` with `noeviction`):
    nothing was written; retry after `retry_after_ms`, or free memory (trim, add shards)."""

    code = ErrorCode.RESOURCE_EXHAUSTED

    def __init__(self, what: str, detail: str, retry_after_ms: int = 1000) -> None:
        super().__init__(
            what,
            detail,
            f"{what} is out of memory: {detail}; nothing was written, retry in "
            f"{retry_after_ms} ms with the same id",
        )
        self.retry_after_ms = retry_after_ms


class BackendFailed(_ServerError):
    """A backing server refused a command for a reason no other error names (a wrong key
    type, a script error): a fault to report, not to retry blindly."""

    code = ErrorCode.BACKEND_FAILED

    def __init__(self, what: str, detail: str) -> None:
        super().__init__(what, detail, f"{what} refused the command: {detail}")
