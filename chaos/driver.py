"""What faults act on while a game day runs: Toxiproxy, processes, and the control plane.

Processes are found by component name among the game day's services (see
`chaos.services`) and the launcher's process table. A killed server is started again
(when a step says so) from the command line it ran with, read from /proc before the
kill, with its output appended to its old log; such restarted processes are not in the
launcher's table, so `ProcessControl.close` stops them at the end of the run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from chaos.errors import FaultError
from chaos.history import Event
from chaos.services import Services
from regions.control import ControlPlane
from regions.devcluster import DevCluster
from regions.processes import ProcessRecord, is_alive
from regions.promotion import failback, promote
from regions.topology import Topology
from regions.toxiproxy import ToxiproxyClient

Say = Callable[[str], None]


@dataclass
class _Restartable:
    argv: list[str]
    cwd: str
    log: str
    region: str
    proc: subprocess.Popen[bytes] | None = None


@dataclass
class ProcessControl:
    cluster: DevCluster
    services: Services
    killed: dict[str, _Restartable] = field(default_factory=dict)
    restarted: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    paused: set[str] = field(default_factory=set)
    lost_infra: dict[str, list[str]] = field(default_factory=dict)

    def _record(self, name: str) -> ProcessRecord | None:
        return next((r for r in self.cluster.records() if r.name == name), None)

    def _pid(self, name: str) -> int | None:
        """The live process group leader for `name`, wherever it was started."""
        svc = self.services.by_name.get(name)
        if svc is not None:
            return svc.pid if svc.alive() else None
        again = self.restarted.get(name)
        if again is not None:
            return again.pid if again.poll() is None else None
        record = self._record(name)
        if record is None:
            raise FaultError(
                f"no component {name!r} in this cluster; see `homeport dev status` for names"
            )
        return record.pid if is_alive(record) else None

    def kill(self, name: str) -> bool:
        pid = self._pid(name)
        if pid is None:
            return False
        if name not in self.services.by_name:
            proc = Path(f"/proc/{pid}")
            argv = (proc / "cmdline").read_bytes().rstrip(b"\0").split(b"\0")
            record = self._record(name)
            self.killed[name] = _Restartable(
                [a.decode() for a in argv],
                os.readlink(proc / "cwd"),
                record.log if record else "/dev/null",
                record.region if record else "",
            )
        _killpg(pid, signal.SIGCONT)
        _killpg(pid, signal.SIGKILL)
        self.paused.discard(name)
        _wait_gone(pid, self.restarted.get(name))
        return True

    def restart(self, name: str) -> bool:
        if name in self.services.by_name:
            return self.services.restart(name)
        saved = self.killed.pop(name, None)
        if saved is None:
            return False
        with open(saved.log, "ab") as out:
            self.restarted[name] = subprocess.Popen(
                saved.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=saved.cwd,
                start_new_session=True,
            )
        return True

    def pause(self, name: str) -> bool:
        pid = self._pid(name)
        if pid is None:
            return False
        _killpg(pid, signal.SIGSTOP)
        self.paused.add(name)
        return True

    def resume(self, name: str) -> bool:
        pid = self._pid(name)
        self.paused.discard(name)
        if pid is None:
            return False
        _killpg(pid, signal.SIGCONT)
        return True

    def lose_region(self, region: str) -> list[str]:
        self.services.lost.add(region)
        names = [r.name for r in self.cluster.records() if r.region == region]
        names += [s.name for s in self.services.hosted_by(region)]
        killed = [name for name in names if self.kill(name)]
        self.lost_infra[region] = [n for n in killed if n not in self.services.by_name]
        return killed

    def restore_region(self, region: str) -> list[str]:
        self.services.lost.discard(region)
        names = self.lost_infra.pop(region, [])
        names += [s.name for s in self.services.by_name.values() if s.region == region]
        return [name for name in names if self.restart(name)]

    def close(self) -> None:
        for name in list(self.paused):
            self.resume(name)
        for proc in self.restarted.values():
            if proc.poll() is None:
                _killpg(proc.pid, signal.SIGTERM)
        for proc in self.restarted.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                _killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


def _killpg(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


def _wait_gone(pid: int, handle: subprocess.Popen[bytes] | None) -> None:
    """Bounded wait until `pid` has exited, so a restart never races the old process for
    its port."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if handle is not None:
            if handle.poll() is not None:
                return
        else:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            if not Path(f"/proc/{pid}").exists() or _zombie(pid):
                return
        time.sleep(0.01)


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"


@dataclass
class ControlActions:
    """Manual promotion and failback, run from the standby region as an operator would."""

    topology: Topology
    events: list[Event]
    say: Say

    async def _plane(self, home: str) -> ControlPlane:
        src = self.topology.region(home).standby or home
        return await ControlPlane.open(self.topology, src)

    async def promote(self, home: str) -> str:
        cp = await self._plane(home)
        try:
            report = await promote(cp, home, reason="game day", say=self.say)
        finally:
            await cp.close()
        detail = f"{home} -> {report.to} at epoch {report.new_epoch} in {report.seconds:.2f}s"
        self.events.append(Event(time.time(), "promoted", home, detail))
        return "promoted " + detail

    async def failback(self, home: str) -> str:
        cp = await self._plane(home)
        try:
            report = await failback(cp, home, switch=True, say=self.say)
        finally:
            await cp.close()
        detail = (
            f"{home} back home at epoch {report.epoch}; {len(report.orphans)} orphans, "
            f"{report.requeued} re-enqueued"
        )
        self.events.append(Event(time.time(), "failed-back", home, detail))
        return "failed back " + detail


@dataclass
class FaultContext:
    toxiproxy: ToxiproxyClient
    processes: ProcessControl
    control: ControlActions
