"""`run_processes`: N worker processes of one App, forked from one parent (`--processes`).

Python runs one thread of bytecode at a time, so one worker process uses about one core.
`homeport worker --processes N` loads the App once, then forks N children before any
event loop or connection exists (fork-safe: each child opens its own Redis and
PostgreSQL connections). Each child is an ordinary worker with its own worker id:
the region manager balances partitions over them through the existing leases, so two
children never own one partition, and one child's death moves only its partitions.

The parent only supervises: SIGTERM/SIGINT are forwarded to every child (a second one
forwarded again means "stop now", as for one worker); it returns the highest exit code
once every child has exited. A child that dies is not restarted (a supervisor such as
systemd or Kubernetes restarts the whole process group); its partitions move to the
others after the lease TTL.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

import click

log = logging.getLogger(__name__)


def run_processes(n: int, child: Callable[[int], None]) -> int:
    """Fork `n` children running `child(index)`; forward stop signals; wait for all.

    Returns the highest child exit code (0 when all stopped cleanly)."""
    if n < 1:
        raise ValueError(f"processes={n}: give 1 or more worker processes")
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=child, args=(k,), name=f"worker-{k}") for k in range(n)]

    def forward(signum: int, _frame: FrameType | None) -> None:
        for p in procs:
            if p.pid is not None and p.exitcode is None:
                try:
                    os.kill(p.pid, signum)
                except ProcessLookupError:
                    pass

    old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        for p in procs:
            p.start()
        for p in procs:
            p.join()
            if p.exitcode:
                log.warning("worker process %s (pid %s) exited with %s", p.name, p.pid, p.exitcode)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    return max(abs(p.exitcode or 0) for p in procs)


def processes_option(help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The `--processes N` option of `homeport worker` and `homeport gateway`."""
    return click.option(
        "--processes",
        type=click.IntRange(min=1),
        default=1,
        show_default=True,
        help=help_text,
    )
