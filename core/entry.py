"""How a task is laid out in Redis, and the worker's view of one delivery.

A stream entry has one field, `t`: a msgpack array (the *task blob*)

    [id, partition_key, kind, payload, scheduled_ms (0 none), max_attempts,
     deadline_ms (0 none), durability, enqueued_ms, attempts_before, epoch]

One opaque field keeps every script and every XADD short (Redis and redis-py cost grows
with the argument count) and lets the worker decode an entry with one C call. Strings are
UTF-8; the scripts never look inside except `requeue.lua`, which resets attempts_before.
The delayed set's data hash holds the same blob. Dead-letter entries add `err` (reason),
`src` (original entry id) and `at` (attempts spent).

Versions: an entry without a `v` field is version 1, the layout above. An entry with
another `v` (written by a newer engine), or whose blob does not decode, cannot run here:
`Delivery.parse` returns an `Undecodable` naming why, and the worker dead-letters it with
that reason and acks it, so it neither stays pending forever nor blocks its partition.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import msgpack
from homeport.core.task import Task

ATTEMPTS_INDEX = 9  # position of attempts_before in the blob (0-based)
VERSION = b"1"  # the entry layout this engine writes and reads (the `v` field; absent = 1)
_DECODE_ERRORS = (
    KeyError,
    ValueError,
    TypeError,
    IndexError,
    AttributeError,
    msgpack.UnpackException,
)


@dataclasses.dataclass(frozen=True, slots=True)
class Undecodable:
    """A stream entry this engine cannot run: `reason` is "version" or "decode", `detail`
    says what was found (dead-letter reason)."""

    entry_id: str
    reason: str
    detail: str


def pack(task: Task, now_ms: int, epoch: int) -> tuple[int, bytes]:
    """(due ms or 0 when ready now, the task blob) of a task enqueued at `now_ms`."""
    # Rounded up: a task may start late by under a millisecond, never early.
    sched = 0 if task.scheduled_at is None else math.ceil(task.scheduled_at * 1000)
    deadline = 0 if task.deadline is None else int(task.deadline * 1000)
    blob = msgpack.packb(
        [
            task.id,
            task.partition_key,
            task.kind,
            task.payload,
            sched,
            task.max_attempts,
            deadline,
            task.durability.value,
            now_ms,
            0,
            epoch,
        ],
        use_bin_type=True,
    )
    return (sched if sched > now_ms else 0), blob


@dataclasses.dataclass(slots=True)
class Delivery:
    """One delivery of a stream entry to this worker.

    `deliveries` is Redis's delivery count (1 on first read; XCLAIM raises it), so a task
    that keeps killing workers is recognised as poison after `max_deliveries`.
    """

    entry_id: str
    task_id: str
    key: str
    kind: str
    payload: bytes
    scheduled_ms: int
    max_attempts: int
    deadline_ms: int
    durability: str
    enqueued_ms: int
    attempts_before: int
    epoch: int
    deliveries: int = 1
    # Earlier begins of this entry that never finished (read at reclaim time): > 0 marks
    # a suspect that may have killed a worker; a repeat suspect runs alone.
    prior_starts: int = 0

    @classmethod
    def decode(
        cls, entry_id: bytes | str, fields: dict[bytes, bytes], deliveries: int = 1
    ) -> Delivery | None:
        """The delivery of a stream entry, or None if the entry is not a task blob."""
        got = cls.parse(entry_id, fields, deliveries)
        return got if isinstance(got, Delivery) else None

    @classmethod
    def parse(
        cls, entry_id: bytes | str, fields: dict[bytes, bytes], deliveries: int = 1
    ) -> Delivery | Undecodable:
        """The delivery of a stream entry, or why it cannot be one (`Undecodable`)."""
        eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        version = fields.get(b"v", VERSION)
        if version != VERSION:
            return Undecodable(
                eid,
                "version",
                f"entry version {version!r} is unknown to this worker (it reads version "
                f"{VERSION!r}); it was written by a newer engine: upgrade the worker and "
                "requeue it from the dead-letter stream",
            )
        try:
            v = msgpack.unpackb(fields[b"t"], raw=True)
            return cls(
                eid,
                v[0].decode(),
                v[1].decode("utf-8", "surrogatepass"),
                v[2].decode(),
                bytes(v[3]),
                int(v[4]),
                max(1, int(v[5])),
                int(v[6]),
                v[7].decode(),
                int(v[8]),
                int(v[9]),
                int(v[10]),
                deliveries,
            )
        except _DECODE_ERRORS as exc:
            return Undecodable(
                eid,
                "decode",
                f"entry is not a task blob (field 't' of fields {sorted(fields)!r}: "
                f"{type(exc).__name__}: {exc})",
            )

    def repack(self, attempts_before: int) -> bytes:
        """The blob of this task with a new attempts_before (unordered retries)."""
        blob: bytes = msgpack.packb(
            [
                self.task_id,
                self.key,
                self.kind,
                self.payload,
                self.scheduled_ms,
                self.max_attempts,
                self.deadline_ms,
                self.durability,
                self.enqueued_ms,
                attempts_before,
                self.epoch,
            ],
            use_bin_type=True,
        )
        return blob

    @property
    def ready_ms(self) -> int:
        """When the task became runnable: its schedule if it had one, else its enqueue."""
        return max(self.enqueued_ms, self.scheduled_ms)


def taken(reply: list[Any], bad: list[Undecodable]) -> list[tuple[Delivery, int]]:
    """The deliveries of a take.lua reply, each with its begin verdict; entries that are
    no task blob of this version go to `bad` (whatever their verdict: take.lua begins
    only entries whose blob it could read)."""
    out = []
    for eid, verdict, t, v in reply:
        fields = {} if t is None else {b"t": t}
        if v is not None:
            fields[b"v"] = v
        d = Delivery.parse(eid, fields)
        if isinstance(d, Delivery):
            out.append((d, int(verdict)))
        else:
            bad.append(d)
    return out
