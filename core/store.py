"""All PostgreSQL access: the region's record store of tasks and attempts.

Public facade: `RecordStore` (`connect`, `migrate`, `write`, `get_task`, `attempts`,
`cancel`, `close`), `TaskRecord`, `AttemptRecord`, `Status`. Cancelling a task fully
(Redis first, so a worker cannot begin it) is `core.verbs.cancel`; `cancel`
here is only the record.

Writes are batched by `core.recorder.RecordWriter`; `write` sends a whole batch as one
transaction (binary COPY into staging tables then one merging statement, or for a small
batch one statement over UNNEST), so the hot path never costs a round trip per task.
A task's status only moves forward (`Status.rank`): a late duplicate's "running" never
overwrites "succeeded", and the first final status wins.

asyncpg errors are translated to `Unavailable` here and nowhere else.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
from homeport.core.errors import TaskNotFound, Unavailable
from homeport.core.security import Identity

_MIGRATIONS = Path(__file__).parent / "migrations"
_LOCK_ID = 0x686F6D65  # "home": serialises concurrent `db migrate` runs


class Status(enum.StrEnum):
    """A task's recorded status. `rank` orders them; final statuses share the top rank."""

    ENQUEUED = "enqueued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    DEAD = "dead"
    CANCELLED = "cancelled"
    FAILED = "failed"  # an attempt's outcome only; a task that fails for good is DEAD

    @property
    def rank(self) -> int:
        return _RANK[self]


FINAL_RANK = 3
_RANK = {s: {"enqueued": 0, "running": 1, "retrying": 1}.get(s.value, FINAL_RANK) for s in Status}
FINAL = frozenset({Status.SUCCEEDED, Status.DEAD, Status.CANCELLED})


def supersedes(old: TaskRecord, new: TaskRecord) -> bool:
    """The forward-only rule: does `new` replace the recorded `old`? A higher rank wins;
    within a non-final rank a later (or the same) attempt wins; the first final status
    wins. `_FORWARD_ONLY` below is the same rule for PostgreSQL (the batch upsert), and
    tests/core/test_store.py checks the two agree on every pair of statuses."""
    o, n = old.status.rank, new.status.rank
    return n > o or (n == o and o < FINAL_RANK and new.attempts >= old.attempts)


@dataclasses.dataclass(slots=True)
class TaskRecord:
    """One row of `tasks`. Times are unix seconds (float) or None."""

    id: str
    partition_key: str
    partition: int
    region: str
    kind: str
    status: Status
    attempts: int = 0
    payload: bytes | None = None
    scheduled_at: float | None = None
    epoch: int = 0
    result: bytes | None = None
    error: str | None = None
    enqueued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One row of `attempts`: one execution (or skip) of a task by a worker."""

    task_id: str
    attempt: int
    entry_id: str
    worker: str
    region: str
    partition: int
    status: Status
    started_at: float
    finished_at: float | None = None
    duplicate: bool = False
    error: str | None = None


# `supersedes` in SQL (t = the row, EXCLUDED = the new record), shared by both write paths.
_FORWARD_ONLY = f"""EXCLUDED.status_rank > t.status_rank
     OR (EXCLUDED.status_rank = t.status_rank AND t.status_rank < {FINAL_RANK}
         AND EXCLUDED.attempts >= t.attempts)"""
_UPSERT = f"""  ON CONFLICT (id) DO UPDATE SET
    status = EXCLUDED.status, status_rank = EXCLUDED.status_rank,
    attempts = GREATEST(t.attempts, EXCLUDED.attempts),
    kind = CASE WHEN t.kind = '' THEN EXCLUDED.kind ELSE t.kind END,
    payload = COALESCE(t.payload, EXCLUDED.payload),
    result = COALESCE(EXCLUDED.result, t.result),
    error = COALESCE(EXCLUDED.error, t.error),
    epoch = GREATEST(t.epoch, EXCLUDED.epoch),
    enqueued_at = COALESCE(t.enqueued_at, EXCLUDED.enqueued_at),
    started_at = COALESCE(t.started_at, EXCLUDED.started_at),
    finished_at = COALESCE(EXCLUDED.finished_at, t.finished_at),
    updated_at = now()
  WHERE {_FORWARD_ONLY}
"""

# A large batch is COPYed (binary, fast per row) into two per-connection staging tables,
# then merged by one statement: the forward-only upsert of `tasks` and the insert of
# `attempts`. A small batch goes as one statement over UNNEST instead: one round trip
# rather than five, which is what matters when a batch is a handful of rows.
_COPY_FROM_ROWS = 200
_STAGE_SQL = """
CREATE TEMP TABLE hp_tasks_in (
  id text, partition_key text, partition int, region text, kind text, payload bytea,
  scheduled_at float8, epoch bigint, status text, status_rank int2, attempts int,
  result bytea, error text, enqueued_at float8, started_at float8, finished_at float8
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE hp_attempts_in (
  task_id text, attempt int, entry_id text, worker text, region text, partition int,
  status text, duplicate bool, started_at float8, finished_at float8, error_log text
) ON COMMIT DELETE ROWS;
"""
_TASK_IN = (
    "id",
    "partition_key",
    "partition",
    "region",
    "kind",
    "payload",
    "scheduled_at",
    "epoch",
    "status",
    "status_rank",
    "attempts",
    "result",
    "error",
    "enqueued_at",
    "started_at",
    "finished_at",
)
_ATTEMPT_IN = (
    "task_id",
    "attempt",
    "entry_id",
    "worker",
    "region",
    "partition",
    "status",
    "duplicate",
    "started_at",
    "finished_at",
    "error_log",
)
_MERGE_SQL = f"""
WITH t AS (
  INSERT INTO tasks AS t (id, partition_key, partition, region, kind, payload, scheduled_at,
                          epoch, status, status_rank, attempts, result, error, enqueued_at,
                          started_at, finished_at)
  SELECT id, partition_key, partition, region, kind, payload, to_timestamp(scheduled_at),
         epoch, status, status_rank, attempts, result, error, to_timestamp(enqueued_at),
         to_timestamp(started_at), to_timestamp(finished_at)
  FROM hp_tasks_in
{_UPSERT}  RETURNING 1
), a AS (
  INSERT INTO attempts (task_id, attempt, entry_id, worker, region, partition, status,
                        duplicate, started_at, finished_at, error_log)
  SELECT task_id, attempt, entry_id, worker, region, partition, status, duplicate,
         to_timestamp(started_at), to_timestamp(finished_at), error_log
  FROM hp_attempts_in
  RETURNING 1
)
SELECT (SELECT count(*) FROM t), (SELECT count(*) FROM a)
"""

_UNNEST_SQL = f"""
WITH t AS (
  INSERT INTO tasks AS t (id, partition_key, partition, region, kind, payload, scheduled_at,
                          epoch, status, status_rank, attempts, result, error, enqueued_at,
                          started_at, finished_at)
  SELECT u.id, u.k, u.p, u.r, u.n, u.pl, to_timestamp(u.s), u.x, u.st, u.rk, u.a, u.res,
         u.err, to_timestamp(u.e), to_timestamp(u.b), to_timestamp(u.f)
  FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], $6::bytea[],
              $7::float8[], $8::bigint[], $9::text[], $10::int2[], $11::int[], $12::bytea[],
              $13::text[], $14::float8[], $15::float8[], $16::float8[])
       AS u(id, k, p, r, n, pl, s, x, st, rk, a, res, err, e, b, f)
{_UPSERT}  RETURNING 1
), a AS (
  INSERT INTO attempts (task_id, attempt, entry_id, worker, region, partition, status,
                        duplicate, started_at, finished_at, error_log)
  SELECT v.t, v.n, v.e, v.w, v.r, v.p, v.st, v.d, to_timestamp(v.b), to_timestamp(v.f), v.err
  FROM unnest($17::text[], $18::int[], $19::text[], $20::text[], $21::text[], $22::int[],
              $23::text[], $24::bool[], $25::float8[], $26::float8[], $27::text[])
       AS v(t, n, e, w, r, p, st, d, b, f, err)
  RETURNING 1
)
SELECT (SELECT count(*) FROM t), (SELECT count(*) FROM a)
"""

_TASK_COLS = (
    "id, partition_key, partition, region, kind, payload, extract(epoch from scheduled_at), "
    "epoch, status, attempts, result, error, extract(epoch from enqueued_at), "
    "extract(epoch from started_at), extract(epoch from finished_at)"
)


class RecordStore:
    """The region's PostgreSQL record store (asyncpg pool)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def connect(
        cls, dsn: str, *, max_size: int = 4, identity: Identity | None = None
    ) -> RecordStore:
        auth = (identity or Identity.from_env()).pg_kwargs()
        try:
            pool = await asyncpg.create_pool(
                dsn, min_size=1, max_size=max_size, init=_init_connection, **auth
            )
        except (OSError, asyncpg.PostgresError) as exc:
            raise Unavailable("postgresql", f"{type(exc).__name__}: {exc}") from exc
        return cls(pool)

    async def close(self) -> None:
        await self._pool.close()

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[asyncpg.Connection]:
        try:
            async with self._pool.acquire() as conn:
                yield conn
        except (
            OSError,
            asyncpg.PostgresConnectionError,
            asyncpg.InterfaceError,
            asyncpg.CannotConnectNowError,
        ) as exc:
            raise Unavailable("postgresql", f"{type(exc).__name__}: {exc}") from exc

    async def migrate(self) -> list[str]:
        """Apply the SQL files of core/migrations not applied yet, in name order."""
        applied: list[str] = []
        async with self._conn() as conn:
            # Up to date: nothing to lock or create, so a role that may only read the
            # records (a gateway, docs/security.md) passes through.
            if await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL"):
                done = {r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")}
                if {p.stem for p in _MIGRATIONS.glob("*.sql")} <= done:
                    return applied
            await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
            try:
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    "version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
                )
                done = {r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")}
                for path in sorted(_MIGRATIONS.glob("*.sql")):
                    if path.stem in done:
                        continue
                    async with conn.transaction():
                        await conn.execute(path.read_text())
                        await conn.execute(
                            "INSERT INTO schema_migrations (version) VALUES ($1)", path.stem
                        )
                    applied.append(path.stem)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)
        return applied

    async def write(
        self, tasks: Sequence[TaskRecord], attempts: Sequence[AttemptRecord]
    ) -> tuple[int, int]:
        """Upsert task rows (forward-only) and insert attempt rows, in one statement.

        `tasks` must hold each id at most once (the writer coalesces). Returns the number
        of task rows changed and attempt rows inserted.
        """
        trows = [
            (
                t.id,
                t.partition_key,
                t.partition,
                t.region,
                t.kind,
                t.payload,
                t.scheduled_at,
                t.epoch,
                t.status.value,
                _RANK[t.status],
                t.attempts,
                t.result,
                t.error,
                t.enqueued_at,
                t.started_at,
                t.finished_at,
            )
            for t in tasks
        ]
        arows = [
            (
                a.task_id,
                a.attempt,
                a.entry_id,
                a.worker,
                a.region,
                a.partition,
                a.status.value,
                a.duplicate,
                a.started_at,
                a.finished_at,
                a.error,
            )
            for a in attempts
        ]
        if max(len(trows), len(arows)) < _COPY_FROM_ROWS:
            tcols = [list(c) for c in zip(*trows, strict=True)] if trows else [[]] * 16
            acols = [list(c) for c in zip(*arows, strict=True)] if arows else [[]] * 11
            async with self._conn() as conn:
                got = await conn.fetchrow(_UNNEST_SQL, *tcols, *acols)
            return int(got[0]), int(got[1])
        async with self._conn() as conn, conn.transaction():
            if trows:
                await conn.copy_records_to_table("hp_tasks_in", records=trows, columns=_TASK_IN)
            if arows:
                await conn.copy_records_to_table(
                    "hp_attempts_in", records=arows, columns=_ATTEMPT_IN
                )
            got = await conn.fetchrow(_MERGE_SQL)
        return int(got[0]), int(got[1])

    async def get_task(self, task_id: str) -> TaskRecord:
        """The task's record; raises `TaskNotFound`."""
        async with self._conn() as conn:
            row = await conn.fetchrow(f"SELECT {_TASK_COLS} FROM tasks WHERE id = $1", task_id)
        if row is None:
            raise TaskNotFound(task_id)
        return _task_from_row(row)

    async def tasks(self, where: str = "true", *args: Any) -> list[TaskRecord]:
        """Task records matching a SQL condition (operators and tests; not the hot path)."""
        async with self._conn() as conn:
            rows = await conn.fetch(f"SELECT {_TASK_COLS} FROM tasks WHERE {where}", *args)
        return [_task_from_row(r) for r in rows]

    async def attempts(self, task_id: str | None = None) -> list[AttemptRecord]:
        """Attempts of one task (or of all tasks when None), in start order."""
        cond, args = ("WHERE task_id = $1", [task_id]) if task_id is not None else ("", [])
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT task_id, attempt, entry_id, worker, region, partition, status, "
                "extract(epoch from started_at), extract(epoch from finished_at), duplicate, "
                f"error_log FROM attempts {cond} ORDER BY started_at, id",
                *args,
            )
        return [
            AttemptRecord(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                r[5],
                Status(r[6]),
                float(r[7]),
                None if r[8] is None else float(r[8]),
                r[9],
                r[10],
            )
            for r in rows
        ]

    async def cancel(self, task_id: str, partition_key: str, partition: int, region: str) -> Status:
        """Same as `mark_cancelled` (the facade name)."""
        return await self.mark_cancelled(task_id, partition_key, partition, region)

    async def mark_cancelled(
        self, task_id: str, partition_key: str, partition: int, region: str
    ) -> Status:
        """Record `cancelled` unless the task already started; returns the status now.
        Through `hp_mark_cancelled` (migration 002), which a gateway's read-only login
        may call."""
        now = dt.datetime.now(dt.UTC)
        async with self._conn() as conn:
            status = await conn.fetchval(
                "SELECT hp_mark_cancelled($1, $2, $3, $4, $5)",
                task_id,
                partition_key,
                partition,
                region,
                now,
            )
        return Status(status)

    async def reopen(self, task_id: str) -> bool:
        """A requeued dead task starts a new run: its record goes back to `enqueued`
        (result, error, times and attempt count of the finished run cleared; its attempt
        rows stay, so the history keeps every run). The one exception to the forward-only
        rule, and only from `dead`. It must be written *before* the dead letter moves back
        into the stream, so that every record of the new run comes after it. Returns
        whether a dead record was reopened. Through `hp_reopen_task` (migration 003),
        which a gateway's read-only login may call."""
        async with self._conn() as conn:
            return bool(await conn.fetchval("SELECT hp_reopen_task($1)", task_id))


async def _init_connection(conn: asyncpg.Connection) -> None:
    """Per connection: the staging tables `write` COPYs into (temporary, so private to
    the connection; ON COMMIT DELETE ROWS empties them after each batch)."""
    await conn.execute(_STAGE_SQL)


def _task_from_row(r: asyncpg.Record) -> TaskRecord:
    def f(v: Any) -> float | None:
        return None if v is None else float(v)

    return TaskRecord(
        id=r[0],
        partition_key=r[1],
        partition=r[2],
        region=r[3],
        kind=r[4],
        payload=r[5],
        scheduled_at=f(r[6]),
        epoch=r[7],
        status=Status(r[8]),
        attempts=r[9],
        result=r[10],
        error=r[11],
        enqueued_at=f(r[12]),
        started_at=f(r[13]),
        finished_at=f(r[14]),
    )
