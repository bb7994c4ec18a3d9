"""What the SDK hands back: small frozen records instead of protobuf messages.

They are built from the wire messages here, in one place, so user code never imports
generated modules and a proto field rename touches only this file.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, fields

from google.protobuf import timestamp_pb2
from homeport.router.errors import GatewayError, from_rpc_status
from homeport.router.proto_gen import scheduler_pb2 as pb
from ulid import ULID

DURABILITIES = ("LOCAL", "REGION", "GLOBAL")
FINAL_STATUSES = frozenset({"succeeded", "dead", "cancelled"})


def status_name(value: int) -> str:
    """`TASK_STATUS_SUCCEEDED` -> `succeeded`."""
    return pb.TaskStatus.Name(value).removeprefix("TASK_STATUS_").lower()


def durability_name(value: int) -> str:
    return pb.Durability.Name(value).removeprefix("DURABILITY_")


def timestamp_or_none(ts: timestamp_pb2.Timestamp, present: bool) -> dt.datetime | None:
    return ts.ToDatetime(tzinfo=dt.UTC) if present else None


def to_timestamp(when: dt.datetime | float) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    if isinstance(when, dt.datetime):
        ts.FromDatetime(when)
    else:
        ts.FromNanoseconds(int(round(when * 1e9)))
    return ts


@dataclass(frozen=True)
class NewTask:
    """A task as a client describes it. `id` is fixed at construction (a fresh ULID when not
    given) so that every retry of its submit carries the same id and dedups."""

    kind: str
    partition_key: str
    payload: bytes = b""
    id: str = field(default_factory=lambda: str(ULID()))
    scheduled_at: dt.datetime | float | None = None
    # "LOCAL", "REGION", "GLOBAL", or None for the gateway's default.
    durability: str | None = None
    # None means the server's default.
    max_attempts: int | None = None
    deadline: dt.datetime | float | None = None

    def to_wire(self) -> pb.TaskSpec:
        spec = pb.TaskSpec(
            id=self.id,
            partition_key=self.partition_key,
            kind=self.kind,
            payload=self.payload,
            max_attempts=self.max_attempts or 0,
            durability=f"DURABILITY_{(self.durability or 'UNSPECIFIED').upper()}",
        )
        if self.scheduled_at is not None:
            spec.scheduled_at.CopyFrom(to_timestamp(self.scheduled_at))
        if self.deadline is not None:
            spec.deadline.CopyFrom(to_timestamp(self.deadline))
        return spec


@dataclass(frozen=True)
class Submitted:
    """An acknowledged submit. `duplicate`: the id was seen before and nothing new was
    enqueued (a retry, or a resubmission within the dedup window)."""

    task_id: str
    duplicate: bool
    partition: str
    epoch: int
    durability: str

    @classmethod
    def from_wire(cls, msg: pb.SubmitResponse) -> Submitted:
        return cls(
            msg.task_id, msg.duplicate, msg.partition, msg.epoch, durability_name(msg.durability)
        )


@dataclass(frozen=True)
class BatchItem:
    """One task's outcome in `submit_many`: exactly one of `submitted` and `error` is set."""

    task_id: str
    submitted: Submitted | None = None
    error: GatewayError | None = None

    @property
    def ok(self) -> bool:
        return self.submitted is not None

    @classmethod
    def from_wire(cls, msg: pb.SubmitResult) -> BatchItem:
        if msg.HasField("accepted"):
            return cls(msg.task_id, submitted=Submitted.from_wire(msg.accepted))
        return cls(msg.task_id, error=from_rpc_status(msg.error))


@dataclass(frozen=True)
class AttemptView:
    number: int
    worker: str
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    outcome: str
    error: str
    duplicate: bool


@dataclass(frozen=True)
class TaskView:
    """A task as the record store knows it."""

    id: str
    partition_key: str
    kind: str
    status: str
    region: str
    partition: str
    attempt_count: int
    attempts: tuple[AttemptView, ...]
    result: bytes
    error: str
    scheduled_at: dt.datetime | None
    enqueued_at: dt.datetime | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    payload: bytes
    epoch: int

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES

    @classmethod
    def from_wire(cls, msg: pb.TaskInfo) -> TaskView:
        def when(name: str) -> dt.datetime | None:
            return timestamp_or_none(getattr(msg, name), msg.HasField(name))

        attempts = tuple(
            AttemptView(
                a.number,
                a.worker,
                timestamp_or_none(a.started_at, a.HasField("started_at")),
                timestamp_or_none(a.finished_at, a.HasField("finished_at")),
                status_name(a.outcome),
                a.error,
                a.duplicate,
            )
            for a in msg.attempts
        )
        return cls(
            id=msg.id,
            partition_key=msg.partition_key,
            kind=msg.kind,
            status=status_name(msg.status),
            region=msg.region,
            partition=msg.partition,
            attempt_count=msg.attempt_count,
            attempts=attempts,
            result=msg.result,
            error=msg.error,
            scheduled_at=when("scheduled_at"),
            enqueued_at=when("enqueued_at"),
            started_at=when("started_at"),
            finished_at=when("finished_at"),
            payload=msg.payload,
            epoch=msg.epoch,
        )


@dataclass(frozen=True)
class TaskEventView:
    task_id: str
    status: str
    attempts: int
    at: dt.datetime | None
    error: str
    final: bool

    @classmethod
    def from_wire(cls, msg: pb.TaskEvent) -> TaskEventView:
        return cls(
            msg.task_id,
            status_name(msg.status),
            msg.attempts,
            timestamp_or_none(msg.at, msg.HasField("at")),
            msg.error,
            msg.final,
        )


@dataclass(frozen=True)
class CancelOutcome:
    cancelled: bool
    status: str

    @classmethod
    def from_wire(cls, msg: pb.CancelTaskResponse) -> CancelOutcome:
        return cls(msg.cancelled, status_name(msg.status))


@dataclass(frozen=True)
class DeadLetterView:
    task_id: str
    partition: str
    partition_key: str
    kind: str
    attempts: int
    error: str
    dead_at: dt.datetime | None

    @classmethod
    def from_wire(cls, msg: pb.DeadLetter) -> DeadLetterView:
        return cls(
            msg.task_id,
            msg.partition,
            msg.partition_key,
            msg.kind,
            msg.attempts,
            msg.error,
            timestamp_or_none(msg.dead_at, msg.HasField("dead_at")),
        )


@dataclass(frozen=True)
class PartitionView:
    partition: str
    epoch: int
    stream_length: int
    pending: int
    delayed: int
    dead: int
    ready: int
    oldest_ready_age_ms: int
    oldest_pending_age_ms: int
    added_total: int
    delivered_total: int
    dead_total: int
    worker: str

    @classmethod
    def from_wire(cls, msg: pb.PartitionStatus) -> PartitionView:
        # The message's fields, same names and order, none converted: copied by name, so
        # a field added to both cannot shift the others (a renamed one fails loudly).
        return cls(*(getattr(msg, f.name) for f in fields(cls)))


@dataclass(frozen=True)
class ReplicaView:
    address: str
    state: str
    lag_bytes: int

    @classmethod
    def from_wire(cls, msg: pb.ReplicaStatus) -> ReplicaView:
        return cls(msg.address, msg.state, msg.lag_bytes)


@dataclass(frozen=True)
class RegionView:
    region: str
    gateway: str
    partitions: tuple[PartitionView, ...]
    replicas: tuple[ReplicaView, ...] = ()

    @classmethod
    def from_wire(cls, msg: pb.RegionStatusResponse) -> RegionView:
        parts = tuple(PartitionView.from_wire(p) for p in msg.partitions)
        replicas = tuple(ReplicaView.from_wire(r) for r in msg.replicas)
        return cls(msg.region, msg.gateway, parts, replicas)
