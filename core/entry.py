"""How a task is laid out in a stream entry, and the worker's view of one delivery.

Field names are short because they are stored once per entry in Redis:
`id` task id, `k` partition key, `n` kind, `p` payload, `s` scheduled ms (0 none),
`m` max attempts, `dl` deadline ms (0 none), `u` durability, `e` enqueue ms,
`a` attempts already spent (unordered retries), `x` epoch at enqueue. Dead-letter entries
add `err` (reason), `src` (original entry id) and `at` (attempts spent).
"""

from __future__ import annotations

import dataclasses

from core.task import Task


def enqueue_args(task: Task, now_ms: int) -> tuple[int, list[bytes | str | int]]:
    """(due ms, the 9 per-task ARGV values of enqueue.lua) for one task."""
    sched = 0 if task.scheduled_at is None else int(task.scheduled_at * 1000)
    due = sched if sched > now_ms else 0
    deadline = 0 if task.deadline is None else int(task.deadline * 1000)
    return due, [
        due, task.id, task.partition_key, task.kind, task.payload, sched,
        task.max_attempts, deadline, task.durability.value,
    ]


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
    enqueued_ms: int
    scheduled_ms: int
    max_attempts: int
    deadline_ms: int
    attempts_before: int
    epoch: int
    deliveries: int = 1

    @classmethod
    def decode(cls, entry_id: bytes | str, fields: dict[bytes, bytes], deliveries: int = 1) -> (
        Delivery
    ):
        def s(name: bytes) -> str:
            return fields.get(name, b"").decode("utf-8", errors="surrogatepass")

        def i(name: bytes) -> int:
            raw = fields.get(name)
            return int(raw) if raw else 0

        eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        return cls(
            entry_id=eid, task_id=s(b"id"), key=s(b"k"), kind=s(b"n"),
            payload=fields.get(b"p", b""), enqueued_ms=i(b"e"), scheduled_ms=i(b"s"),
            max_attempts=max(1, i(b"m")), deadline_ms=i(b"dl"), attempts_before=i(b"a"),
            epoch=i(b"x"), deliveries=deliveries,
        )

    @property
    def ready_ms(self) -> int:
        """When the task became runnable: its schedule if it had one, else its enqueue."""
        return max(self.enqueued_ms, self.scheduled_ms)
