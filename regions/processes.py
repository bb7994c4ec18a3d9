"""Processes the local cluster starts, and how they are found and stopped again.

A process is recorded by PID *and* its kernel start time (field 22 of /proc/PID/stat), so
`down` never signals an unrelated process that happens to reuse a PID after a reboot or
a crash. Each process leads its own session (and so its own process group), which lets
`stop` reach the children a server forks.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from homeport.core.supervisor import Child, ChildFailed, signal_group, wait_until
from homeport.regions.errors import ClusterStateError, LaunchError


@dataclass(frozen=True)
class ProcessRecord:
    """One process `up` started: enough to find it, stop it and read its log."""

    name: str
    kind: str
    pid: int
    start_time: int
    log: str
    address: str = ""
    region: str = ""
    stop_signal: int = int(signal.SIGTERM)
    argv: tuple[str, ...] = ()
    user: str | None = None


def _start_time(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; fields after it follow the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie has exited; only its parent's wait() is left
        return None
    return int(fields[19])


def is_alive(record: ProcessRecord) -> bool:
    return _start_time(record.pid) == record.start_time


def pid_alive(pid: int) -> bool:
    """Whether `pid` names a running (not zombie) process."""
    return _start_time(pid) is not None


@dataclass
class ProcessTable:
    """The state file `.homeport/processes.json`: every process a cluster started.

    It is written after each spawn, so an `up` that dies half-way can still be undone.
    """

    path: Path
    records: list[ProcessRecord] = field(default_factory=list)
    # Popen handles of the processes this Python process started itself: kept so they
    # are waited for (no zombies, no ResourceWarning) when stopped from the same process.
    handles: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, path: Path) -> ProcessTable:
        if not path.exists():
            raise ClusterStateError(
                f"no local cluster state at {path}; start one with `homeport dev up`"
            )
        data = json.loads(path.read_text())
        records = [
            ProcessRecord(**(r | {"argv": tuple(r.get("argv", ()))})) for r in data["processes"]
        ]
        return cls(path, records)

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"processes": [asdict(r) for r in self.records]}, indent=1))
        tmp.replace(self.path)

    def add(self, record: ProcessRecord) -> None:
        self.records.append(record)
        self.save()

    def alive(self) -> list[ProcessRecord]:
        return [r for r in self.records if is_alive(r)]


def spawn(
    table: ProcessTable,
    name: str,
    kind: str,
    argv: Sequence[str],
    log: Path,
    *,
    region: str = "",
    address: str = "",
    user: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    stop_signal: int = signal.SIGTERM,
) -> ProcessRecord:
    """Start `argv` in a session of its own, output to `log`, and record it in `table`."""
    try:
        child = Child.start(name, argv, log, env=env, cwd=cwd, user=user, stop_signal=stop_signal)
    except ChildFailed as exc:
        raise LaunchError(name, exc.reason, log) from exc
    proc = child.proc
    started = _start_time(proc.pid)
    record = ProcessRecord(
        name=name,
        kind=kind,
        pid=proc.pid,
        start_time=started if started is not None else -1,
        log=str(log),
        address=address,
        region=region,
        stop_signal=int(stop_signal),
        argv=tuple(argv),
        user=user,
    )
    table.handles[proc.pid] = proc
    table.add(record)
    return record


def _reap(pid: int, handles: dict[int, subprocess.Popen[bytes]]) -> None:
    """Collect the exit status when we are the parent, so the process leaves no zombie."""
    handle = handles.get(pid)
    if handle is not None:
        handle.poll()
        return
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def stop(
    records: Sequence[ProcessRecord],
    grace: float = 10.0,
    handles: dict[int, subprocess.Popen[bytes]] | None = None,
) -> list[ProcessRecord]:
    """Stop `records` (their own stop signal, then SIGKILL after `grace` seconds).

    Returns the records that were still running when asked to stop.
    """
    handles = handles if handles is not None else {}
    running = [r for r in records if is_alive(r) or _child_running(r, handles)]
    for record in running:
        signal_group(record.pid, record.stop_signal)
    deadline = time.monotonic() + grace
    pending = list(running)
    while pending and time.monotonic() < deadline:
        for record in pending:
            _reap(record.pid, handles)
        pending = [r for r in pending if is_alive(r) or _child_running(r, handles)]
        if pending:
            time.sleep(0.05)
    for record in pending:
        signal_group(record.pid, signal.SIGKILL)
    for record in records:
        _reap(record.pid, handles)
    for record in pending:
        handle = handles.get(record.pid)
        if handle is not None:
            handle.wait(timeout=5)
            continue
        for _ in range(100):
            _reap(record.pid, handles)
            if not is_alive(record):
                break
            time.sleep(0.02)
    return running


def _child_running(record: ProcessRecord, handles: dict[int, subprocess.Popen[bytes]]) -> bool:
    """For our own children the Popen handle is authoritative, even when the start time
    could not be read at spawn (a process that was still being exec'd)."""
    handle = handles.get(record.pid)
    return handle is not None and handle.poll() is None


def wait_ready(
    record: ProcessRecord,
    probe: Callable[[], bool],
    timeout: float,
    what: str = "ready",
) -> None:
    """Poll `probe` until it is true; fail naming the process and its log when the process
    exits or `timeout` seconds pass (`core.supervisor.wait_until`)."""
    try:
        wait_until(record.name, probe, lambda: is_alive(record), Path(record.log), timeout, what)
    except ChildFailed as exc:
        raise LaunchError(record.name, exc.reason, Path(record.log)) from None
