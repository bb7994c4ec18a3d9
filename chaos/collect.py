"""Executions of one run, from two sources.

1. The handlers' own journal (`chaos.app`): one line when an execution starts, one when
   it ends. It is the source of truth for *whether and when* a task ran: it survives a
   SIGKILL, and it does not rely on the system under test reporting on itself.
2. The `attempts` rows of every region's database, which add what only the engine knows:
   the worker id and the epoch the task was written with (`tasks.epoch`). A task's rows
   may sit in several databases (the home's workers write their region's, after a
   failover the serving region's workers write theirs). An execution the journal has
   and no database recorded keeps an empty `db` (a recording gap).
"""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
from homeport.chaos.history import Execution
from homeport.core.security import Identity
from homeport.regions.topology import Topology

_ATTEMPTS = """
SELECT a.task_id, a.attempt, a.worker, a.region, coalesce(t.epoch, 0) AS epoch
FROM attempts a LEFT JOIN tasks t ON t.id = a.task_id
WHERE a.task_id LIKE $1 || '-%'
"""


def read_journal(path: Path) -> list[Execution]:
    """Executions in start order; one whose end line never came (its worker was killed
    mid-run) has `end = None` and status `interrupted`."""
    running: dict[tuple[str, int, int], Execution] = {}
    done: list[Execution] = []
    if not path.exists():
        return []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a line cut by a SIGKILL mid-write
        key = (rec["task_id"], rec["attempt"], rec["pid"])
        if "start" in rec:
            running[key] = Execution(
                rec["task_id"], rec["start"], None, rec["attempt"], f"pid:{rec['pid']}",
                rec["region"], status="interrupted",
            )  # fmt: skip
        elif key in running:
            ex = running.pop(key)
            ex.end, ex.status = rec["end"], "succeeded"
            done.append(ex)
    return sorted([*done, *running.values()], key=lambda e: e.start)


def journaled(path: Path) -> set[str]:
    """Task ids with a finished execution in the journal."""
    return {e.task_id for e in read_journal(path) if e.status == "succeeded"}


async def executions(topology: Topology, run: str, journal: Path) -> list[Execution]:
    found = read_journal(journal)
    rows: dict[tuple[str, int], tuple[str, int, str]] = {}
    for region in topology.regions:
        try:
            conn = await asyncpg.connect(
                region.postgres, timeout=10, **Identity.of(topology.security).pg_kwargs()
            )
        except (OSError, asyncpg.PostgresError):
            continue
        try:
            for r in await conn.fetch(_ATTEMPTS, run):
                rows[(r["task_id"], r["attempt"])] = (r["worker"], int(r["epoch"]), region.name)
        finally:
            await conn.close()
    for ex in found:
        row = rows.get((ex.task_id, ex.attempt))
        if row is not None:
            ex.worker, ex.epoch, ex.db = row
    return found
