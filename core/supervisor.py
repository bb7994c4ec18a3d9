"""One way to run a child process, for every part of homeport that starts one.

A child starts in a session of its own (so a signal to its process group reaches what
it forks) with its output in a log file; `wait_ready` polls a probe, or looks for a line
in that log, while watching for an early exit; `stop` sends the child's stop signal to
the group, then SIGKILL after a grace period, and reaps it. Failures name the process
and end with the last lines of its log.

Users: the local cluster's launcher (`regions.processes`, which adds a PID table that
survives the CLI), the benchmarks, the load-test stack, the peer benchmark, the load
test's own Redis and the test fixtures.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from homeport.errors import HomeportError


class ChildFailed(HomeportError):
    """A child could not start, exited before it was ready, or was not ready in time."""

    def __init__(self, name: str, reason: str, log: Path | None = None) -> None:
        tail = f"; last log lines:\n{log_tail(log)}" if log is not None else ""
        super().__init__(f"{name}: {reason}{tail}")
        self.name = name
        self.reason = reason + tail
        self.log = log


def log_tail(path: Path | str, lines: int = 12) -> str:
    """The last `lines` lines of a log file ("" when there is none)."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def signal_group(pid: int, sig: int) -> None:
    """`sig` to the process group `pid` leads (to `pid` alone where the group is not
    ours to signal); nothing when it is gone."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


def wait_until(
    name: str,
    ready: Callable[[], bool] | re.Pattern[str],
    alive: Callable[[], bool],
    log: Path,
    timeout: float,
    what: str = "ready",
) -> re.Match[str] | None:
    """Poll `ready` (a probe, or a pattern searched in `log`, whose match is returned)
    until it holds; `ChildFailed` naming `name` when `alive()` turns false first or
    `timeout` seconds pass. A probe that raises means "not ready yet"."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        if isinstance(ready, re.Pattern):
            found = ready.search(log_tail(log, 10_000))
            if found:
                return found
        else:
            try:
                if ready():
                    return None
            except Exception:  # noqa: BLE001 - any failure of a probe means "not yet"
                pass
        if not alive():
            raise ChildFailed(name, f"exited before it was {what}", log)
        if time.monotonic() >= deadline:
            raise ChildFailed(name, f"not {what} after {timeout:.0f}s", log)
        time.sleep(delay)  # polling a child's readiness, bounded by the deadline
        delay = min(delay * 1.5, 0.25)


@dataclass
class Child:
    """One started process; see the module docstring."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    stop_signal: int = int(signal.SIGTERM)
    killed: bool = False  # `stop` had to SIGKILL it

    @classmethod
    def start(
        cls,
        name: str,
        argv: Sequence[str],
        log: Path,
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
        stop_signal: int = signal.SIGTERM,
        append: bool = True,
    ) -> Child:
        """Start `argv` with stdout and stderr in `log` (appended, or truncated)."""
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab" if append else "wb") as out:
            try:
                proc = subprocess.Popen(
                    list(argv),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    user=user,
                    env=env,
                    cwd=cwd,
                )
            except OSError as exc:
                raise ChildFailed(name, f"cannot run {argv[0]!r}: {exc.strerror}") from exc
        return cls(name, proc, log, int(stop_signal))

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 15) -> str:
        return log_tail(self.log, lines)

    def wait_ready(
        self,
        ready: Callable[[], bool] | re.Pattern[str],
        timeout: float,
        what: str = "ready",
    ) -> re.Match[str] | None:
        """`wait_until` this child is ready (a probe, or a pattern whose match in the log
        is returned)."""
        return wait_until(self.name, ready, lambda: self.running, self.log, timeout, what)

    def signal(self, sig: int) -> None:
        if self.running:
            signal_group(self.pid, sig)

    def stop(self, grace: float = 10.0) -> int:
        """The stop signal to the group, SIGKILL after `grace` seconds; the exit code."""
        self.signal(self.stop_signal)
        try:
            return self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.killed = True
            signal_group(self.pid, signal.SIGKILL)
            return self.proc.wait(10)

    def kill(self) -> int:
        """SIGKILL the group at once (a crash, for fault tests); the exit code."""
        self.signal(signal.SIGKILL)
        return self.proc.wait(10)


def stop_all(children: Sequence[Child], grace: float = 10.0) -> None:
    """Stop every child at once (stop signals newest first), SIGKILL what is still
    running `grace` seconds later."""
    for child in reversed(children):
        child.signal(child.stop_signal)
    deadline = time.monotonic() + grace
    for child in reversed(children):
        child.stop(max(0.0, deadline - time.monotonic()))
