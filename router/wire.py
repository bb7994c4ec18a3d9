"""Translation of request messages into domain objects, field by field.

Every field is checked here or by `core.task.new_task`; an `InvalidArgument` raised
for a field is re-raised with the field's path in the request (`task.partition_key`,
`tasks[17].payload`) so the client sees exactly which one to fix.
"""

from __future__ import annotations

from google.protobuf import timestamp_pb2
from homeport.core.errors import InvalidArgument
from homeport.core.task import Durability, Limits, Task, new_task
from homeport.router.proto_gen import scheduler_pb2 as pb

DURABILITY_FROM_WIRE: dict[int, Durability] = {
    pb.DURABILITY_LOCAL: Durability.LOCAL,
    pb.DURABILITY_REGION: Durability.REGION,
    pb.DURABILITY_GLOBAL: Durability.GLOBAL,
}
# By enum value name, which message constructors accept.
DURABILITY_TO_WIRE: dict[Durability, str] = {
    v: pb.Durability.Name(k) for k, v in DURABILITY_FROM_WIRE.items()
}
_MAX_NANOS = 999_999_999
_MAX_ID_BYTES = 128


def _seconds(spec: pb.TaskSpec, field: str, path: str) -> float | None:
    if not spec.HasField(field):
        return None
    ts: timestamp_pb2.Timestamp = getattr(spec, field)
    if not 0 <= ts.nanos <= _MAX_NANOS:
        raise InvalidArgument(f"{path}{field}.nanos", ts.nanos, "must be 0..999999999")
    return ts.seconds + ts.nanos / 1e9


def _durability(spec: pb.TaskSpec, default: Durability, path: str) -> Durability:
    if spec.durability == pb.DURABILITY_UNSPECIFIED:
        return default
    try:
        return DURABILITY_FROM_WIRE[spec.durability]
    except KeyError:
        raise InvalidArgument(
            f"{path}durability",
            int(spec.durability),
            "must be DURABILITY_LOCAL, DURABILITY_REGION or DURABILITY_GLOBAL",
        ) from None


def task_from_wire(
    spec: pb.TaskSpec,
    path: str,
    *,
    limits: Limits,
    default_durability: Durability,
    now: float | None = None,
) -> Task:
    """A validated `Task` from `spec`; `path` prefixes field names in errors ("task.")."""
    # max_attempts 0 (unset on the wire) leaves new_task's default in force.
    extra = {"max_attempts": spec.max_attempts} if spec.max_attempts else {}
    try:
        return new_task(
            spec.partition_key,
            spec.kind,
            spec.payload,
            id=spec.id or None,
            scheduled_at=_seconds(spec, "scheduled_at", ""),
            durability=_durability(spec, default_durability, ""),
            deadline=_seconds(spec, "deadline", ""),
            limits=limits,
            now=now,
            **extra,
        )
    except InvalidArgument as exc:
        raise InvalidArgument(path + exc.field, exc.value, exc.reason) from None


def task_id_from_wire(task_id: str, field: str = "task_id") -> str:
    if not task_id:
        raise InvalidArgument(field, task_id, "must not be empty: give the id Submit returned")
    if len(task_id.encode()) > _MAX_ID_BYTES or not task_id.isprintable() or " " in task_id:
        raise InvalidArgument(field, task_id, "must be 1-128 printable ASCII chars, no spaces")
    return task_id
