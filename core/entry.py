"""How a task is laid out in Redis, and the worker's view of one delivery.

A stream entry has one field, `t`: a msgpack array (the *task blob*)

    [id, partition_key, kind, payload, scheduled_ms (0 none), max_attempts,
     deadline_ms (0 none), durability, enqueued_ms, attempts_before, epoch]

One opaque field keeps every script and every XADD short (Redis and redis-py cost grows
with the argument count) and lets the worker decode an entry with one C call. Strings are
UTF-8; the scripts never look inside except `requeue.lua`, which resets attempts_before.
The delayed set's data hash holds the same blob. Dead-letter entries add `err` (reason),
`src` (original entry id) and `at` (attempts spent).
"""

from __future__ import annotations

import dataclasses
import math

import msgpack
from homeport.core.task import Task

ATTEMPTS_INDEX = 9  # position of attempts_before in the blob (0-based)


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
        eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
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
        except (
            KeyError,
            ValueError,
            TypeError,
            IndexError,
            AttributeError,
            msgpack.UnpackException,
        ):
            return None

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
