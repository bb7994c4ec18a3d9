"""The engine of one region.

Task model and validation, the partitioner, Redis key names and Lua scripts, enqueue,
the worker, the region manager's loops (assignment, delayed-task forwarder, reclaimer), the
PostgreSQL record store and the metrics. `core` imports no other homeport package.

The facade other packages use (stable names; each documented in its module):

- `core.task`: `Task`, `Durability`, `Limits`, `new_task` (the validating factory)
- `core.partitioner`: `partition_of`, `partition_name`
- `core.producer`: `Producer.submit_many(tasks, epoch) -> list[SubmitResult]`
- `core.store`: `RecordStore` (`get_task`, `attempts`, `cancel`, `migrate`), `Status`
- `core.verbs`: `cancel`, `dead_letters`, `find_dead`, `requeue_dead` (one rule each)
- `core.errors`: `HomeportError` and its subclasses, each with an `ErrorCode`
- `core.app`: `App`, `TaskContext` (re-exported by `homeport`)
- `core.worker`: `Worker`; `core.settings`: `Settings`; `core.admin`: `AdminServer`

See docs/engine.md for the design.
"""
