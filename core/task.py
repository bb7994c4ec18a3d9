"""The task model and its validation: the only way a `Task` is born is `new_task`.

Public facade (stable names the gateway relies on): `Task`, `Durability`, `Limits`,
`new_task`.

A *task* is one unit of work: a handler name (`kind`), an opaque `payload`, and a
`partition_key` that decides its partition (and so its order relative to other tasks of
the same key). `new_task` refuses bad input with `InvalidArgument` naming the field, the
value and the fix, before anything touches Redis, so a refused submit writes nothing.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import time

from homeport.core.errors import InvalidArgument
from ulid import ULID

_KIND_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:\-]{0,127}$")
_ID_RE = re.compile(r"^[\x21-\x7e]{1,128}$")


class Durability(enum.StrEnum):
    """How many copies must hold a task before its submit is acknowledged.

    LOCAL: the home primary only. REGION: also one in-region replica (WAIT 1).
    GLOBAL: also the standby region's replica (WAIT counting every replica).
    """

    LOCAL = "L"
    REGION = "R"
    GLOBAL = "G"


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    """Validation limits; every field's unit is in its name, zero is never 'unlimited'."""

    max_key_bytes: int = 1024
    max_payload_bytes: int = 1024 * 1024
    max_attempts_cap: int = 1000
    # scheduled_at further than this ahead is refused: catches ms-vs-s mix-ups (year 3000).
    max_schedule_ahead_s: float = 366 * 24 * 3600.0


@dataclasses.dataclass(frozen=True, slots=True)
class Task:
    """One validated unit of work. Times are unix seconds (float); None means unset."""

    id: str
    partition_key: str
    kind: str
    payload: bytes
    scheduled_at: float | None = None
    durability: Durability = Durability.LOCAL
    max_attempts: int = 3
    deadline: float | None = None


def new_task(
    partition_key: str,
    kind: str,
    payload: bytes = b"",
    *,
    id: str | None = None,
    scheduled_at: float | None = None,
    durability: Durability | str = Durability.LOCAL,
    max_attempts: int = 3,
    deadline: float | None = None,
    limits: Limits = Limits(),
    now: float | None = None,
) -> Task:
    """Validate the fields and build a `Task`; generate a ULID id when `id` is None.

    Raises `InvalidArgument` for the first bad field. `now` (unix seconds) is injectable
    for tests; it defaults to the wall clock.
    """
    now = time.time() if now is None else now
    _check_key(partition_key, limits)
    if not isinstance(kind, str) or not _KIND_RE.match(kind):
        raise InvalidArgument(
            "kind",
            kind,
            "must be 1-128 chars of letters, digits, '_', '.', ':' or '-', "
            "starting with a letter or '_' (the name a handler was registered under)",
        )
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise InvalidArgument("payload", type(payload).__name__, "must be bytes")
    payload = bytes(payload)
    if len(payload) > limits.max_payload_bytes:
        raise InvalidArgument(
            "payload",
            f"<{len(payload)} bytes>",
            f"is larger than the {limits.max_payload_bytes}-byte limit; store the data "
            "elsewhere and send a reference",
        )
    if id is None:
        id = str(ULID())
    elif not isinstance(id, str) or not _ID_RE.match(id):
        raise InvalidArgument("id", id, "must be 1-128 printable ASCII chars without spaces")
    _check_time("scheduled_at", scheduled_at, now, limits, allow_past=True)
    _check_time("deadline", deadline, now, limits, allow_past=False)
    try:
        durability = Durability(durability)
    except ValueError:
        raise InvalidArgument(
            "durability", durability, "must be one of LOCAL ('L'), REGION ('R'), GLOBAL ('G')"
        ) from None
    if (
        not isinstance(max_attempts, int)
        or isinstance(max_attempts, bool)
        or not 1 <= max_attempts <= limits.max_attempts_cap
    ):
        raise InvalidArgument(
            "max_attempts", max_attempts, f"must be an integer from 1 to {limits.max_attempts_cap}"
        )
    return Task(id, partition_key, kind, payload, scheduled_at, durability, max_attempts, deadline)


def _check_key(key: object, limits: Limits) -> None:
    if not isinstance(key, str):
        raise InvalidArgument("partition_key", key, "must be a string")
    if not key:
        raise InvalidArgument("partition_key", key, "must not be empty; use the entity id")
    size = len(key.encode("utf-8", errors="surrogatepass"))
    if size > limits.max_key_bytes:
        raise InvalidArgument(
            "partition_key",
            key,
            f"is {size} bytes of UTF-8, over the {limits.max_key_bytes}-byte limit; "
            "use a shorter stable id",
        )


def _check_time(
    field: str, value: float | None, now: float, limits: Limits, *, allow_past: bool
) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise InvalidArgument(field, value, "must be unix seconds as a number")
    if value > now + limits.max_schedule_ahead_s:
        raise InvalidArgument(
            field,
            value,
            f"is more than {limits.max_schedule_ahead_s:.0f} s ahead; it must be unix "
            "seconds (not milliseconds) within a year",
        )
    if not allow_past and value <= now:
        raise InvalidArgument(field, value, "is already in the past; the task could never run")
