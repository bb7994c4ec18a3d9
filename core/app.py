"""The application object users register handlers on: `App`, re-exported as `homeport.App`.

    app = homeport.App()

    @app.task("send_invoice", max_attempts=5)
    async def send_invoice(ctx: homeport.TaskContext) -> None: ...

    app.periodic("send_invoice", every_s=60, key="billing")

A handler takes one `TaskContext` and may be `async def` (run on the worker's loop) or a
plain function (run in the worker's thread pool). Its return value (bytes, str, or
anything JSON-able) is recorded as the result; an exception is a failed attempt.

Options per kind: `ordered` (default True: a failed task holds its key until it succeeds
or is dead-lettered; False: the retry goes to the delayed set and the key moves on),
`max_attempts` (overrides the task's own), and retry backoff (`backoff_base_s`,
`backoff_max_s`: exponential, doubled per attempt, with equal jitter).
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import random
from collections.abc import Awaitable, Callable
from typing import Any

from homeport.core.errors import InvalidArgument
from homeport.core.retry import equal_jitter

from homeport.errors import HomeportError


@dataclasses.dataclass(slots=True)
class TaskContext:
    """What a handler gets: the task, which attempt this is, and a cancel signal.

    `cancelled` turns True when someone cancels the task while it runs; long handlers
    should check it (or `await ctx.cancel_requested.wait()`) and stop early by raising
    `Cancelled`.
    """

    task_id: str
    partition_key: str
    kind: str
    payload: bytes
    attempt: int
    deliveries: int
    region: str
    partition: int
    # The cancel signal's Event is made on first use: most handlers never look at it,
    # and an Event per task is measurable on the worker's hot path.
    _cancel: asyncio.Event | None = None
    _cancel_set: bool = False

    @property
    def cancel_requested(self) -> asyncio.Event:
        """Set when someone cancels the task while it runs."""
        if self._cancel is None:
            self._cancel = asyncio.Event()
            if self._cancel_set:
                self._cancel.set()
        return self._cancel

    @property
    def cancelled(self) -> bool:
        return self._cancel_set or (self._cancel is not None and self._cancel.is_set())

    def request_cancel(self) -> None:
        """Raise the cancel signal (the worker calls it when a cancel arrives)."""
        self._cancel_set = True
        if self._cancel is not None:
            self._cancel.set()


class Cancelled(HomeportError):
    """Raise from a handler to end a cancelled task; it is recorded as `cancelled`."""


Handler = Callable[[TaskContext], Any]


@dataclasses.dataclass(frozen=True, slots=True)
class TaskOptions:
    """How the worker runs one kind; see the module docstring."""

    ordered: bool = True
    max_attempts: int | None = None
    backoff_base_s: float = 0.5
    backoff_max_s: float = 60.0

    def backoff_s(self, attempt: int, rng: random.Random) -> float:
        """Delay before attempt `attempt + 1`: base * 2^(attempt-1), capped, equal jitter."""
        return equal_jitter(self.backoff_base_s, self.backoff_max_s, attempt - 1, rng)


@dataclasses.dataclass(frozen=True, slots=True)
class Registration:
    """A registered handler and its options."""

    kind: str
    fn: Handler
    options: TaskOptions
    is_async: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Periodic:
    """A task fired on a schedule, once per tick per region (by the region's manager).

    Exactly one of `cron` (a croniter expression, UTC) or `every_s` is set. The task of
    tick T gets the id `periodic:<name>:<T>` so two managers briefly both leading still
    enqueue it once (submit dedup).
    """

    name: str
    kind: str
    key: str
    payload: bytes
    cron: str | None
    every_s: float | None

    def tick_at_or_before(self, now: float) -> float:
        """Unix seconds of the latest tick not after `now`."""
        if self.every_s is not None:
            return (now // self.every_s) * self.every_s
        if self.cron is None:
            raise ValueError(f"periodic {self.name!r} has neither cron nor every_s")
        from croniter import croniter  # only apps with cron schedules pay its import

        prev: float = croniter(self.cron, now + 1e-6).get_prev(float)
        return float(prev)


class App:
    """Registry of task handlers and periodic tasks of one application."""

    def __init__(self, name: str = "homeport") -> None:
        self.name = name
        self._handlers: dict[str, Registration] = {}
        self._periodic: dict[str, Periodic] = {}

    def task(
        self,
        kind: str,
        *,
        ordered: bool = True,
        max_attempts: int | None = None,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 60.0,
    ) -> Callable[[Handler], Handler]:
        """Register the decorated function as the handler of `kind`."""
        if kind in self._handlers:
            raise InvalidArgument("kind", kind, "is already registered on this app")
        if max_attempts is not None and max_attempts < 1:
            raise InvalidArgument("max_attempts", max_attempts, "must be at least 1")
        opts = TaskOptions(ordered, max_attempts, backoff_base_s, backoff_max_s)

        def register(fn: Handler) -> Handler:
            self._handlers[kind] = Registration(kind, fn, opts, inspect.iscoroutinefunction(fn))
            return fn

        return register

    def periodic(
        self,
        kind: str,
        *,
        cron: str | None = None,
        every_s: float | None = None,
        key: str | None = None,
        payload: bytes = b"",
        name: str | None = None,
    ) -> None:
        """Fire a task of `kind` on a cron schedule or every `every_s` seconds."""
        if (cron is None) == (every_s is None):
            raise InvalidArgument("schedule", (cron, every_s), "give exactly one of cron, every_s")
        if cron is not None and not _cron_valid(cron):
            raise InvalidArgument("cron", cron, "is not a valid cron expression")
        if every_s is not None and every_s <= 0:
            raise InvalidArgument("every_s", every_s, "must be greater than zero seconds")
        name = name or kind
        self._periodic[name] = Periodic(
            name, kind, key or f"periodic:{name}", payload, cron, every_s
        )

    def handler(self, kind: str) -> Registration | None:
        return self._handlers.get(kind)

    @property
    def kinds(self) -> list[str]:
        return sorted(self._handlers)

    @property
    def periodics(self) -> list[Periodic]:
        return list(self._periodic.values())


async def call_handler(
    reg: Registration, ctx: TaskContext, run_sync: Callable[[Callable[[], Any]], Awaitable[Any]]
) -> Any:
    """Run one handler: awaited if async, else through `run_sync` (a thread pool)."""
    if reg.is_async:
        return await reg.fn(ctx)
    return await run_sync(lambda: reg.fn(ctx))


def encode_result(value: Any) -> bytes | None:
    """A handler's return value as recorded: bytes as they are, str as UTF-8, anything
    else as JSON."""
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    import json

    return json.dumps(value, default=str).encode()


def _cron_valid(cron: str) -> bool:
    from croniter import croniter  # imported on use: a worker starts faster without it

    return bool(croniter.is_valid(cron))
