"""What faults act on while a game day runs: Toxiproxy, processes, and the control plane.

Processes are the launcher's own (`regions.devcluster` with services: servers, a gateway
and an agent per region) plus the workers each agent runs, found as the agents' children
and named `worker-<home>-<i>` from the log the agent gave them
(`worker-<host>-<home>-<i>.log`). A killed server, gateway or agent is started again
(when a step says so) from the command line it ran with (the launcher's record, else
/proc before the kill), with its output appended to its old log; such restarted
processes are not in the launcher's table, so `ProcessControl.close` stops them at the
end of the run. A killed worker is restarted by its agent, as in production; the revert
only checks that it was. Workers share their agent's process group, so they are signalled
one by one, while killing an agent kills its group (its workers die with it).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from homeport.chaos.errors import FaultError
from homeport.chaos.history import Event
from homeport.core.supervisor import Child, signal_group, stop_all
from homeport.regions.control import ControlPlane
from homeport.regions.devcluster import DevCluster
from homeport.regions.processes import ProcessRecord, is_alive
from homeport.regions.promotion import failback, promote
from homeport.regions.topology import Topology
from homeport.regions.toxiproxy import ToxiproxyClient

Say = Callable[[str], None]
AGENT_RESTART_S = 10.0  # an agent restarts a dead worker within a supervisor pass or two
_WORKER_LOG = re.compile(r"worker-(?P<host>[a-z]+-[a-z]+)-(?P<home>[a-z]+-[a-z]+)-(?P<i>\d+)\.log$")


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
    killed: dict[str, _Restartable] = field(default_factory=dict)
    restarted: dict[str, Child] = field(default_factory=dict)
    paused: dict[str, int] = field(default_factory=dict)  # name -> the pid stopped
    lost_infra: dict[str, list[str]] = field(default_factory=dict)

    def _record(self, name: str) -> ProcessRecord | None:
        return next((r for r in self.cluster.records() if r.name == name), None)

    def _agent_pids(self) -> set[int]:
        pids = {r.pid for r in self.cluster.records() if r.kind == "agent" and is_alive(r)}
        pids |= {p.pid for n, p in self.restarted.items() if n.startswith("agent-") and p.running}
        return pids

    def _parked_pids(self) -> set[int]:
        """Warm-standby workers (parked on a mirror, see `regions.workforce`), from the
        worker tables the agents publish: they share a serving worker's name, and a
        fault aimed at `worker-<home>-<i>` means the one running the home's tasks."""
        parked: set[int] = set()
        for path in self.cluster.logs.glob("workers-*.json"):
            try:
                parked |= {int(w["pid"]) for w in json.loads(path.read_text()) if w["parked"]}
            except (OSError, ValueError, KeyError):
                continue
        return parked

    def workers(self) -> dict[str, int]:
        """Live workers by name (`worker-<home>-<i>`): the agents' children."""
        agents = self._agent_pids()
        parked = self._parked_pids()
        found: dict[str, int] = {}
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) in parked:
                continue
            try:
                stat = (proc / "stat").read_text()
                fields = stat[stat.rindex(")") + 2 :].split()
                if fields[0] == "Z" or int(fields[1]) not in agents:
                    continue
                match = _WORKER_LOG.search(os.readlink(proc / "fd" / "1"))
            except (OSError, ValueError, IndexError):
                continue  # exited while we looked
            if match:
                found[f"worker-{match['home']}-{match['i']}"] = int(proc.name)
        return found

    def _pid(self, name: str) -> int | None:
        """The live process (group leader, except for workers) for `name`."""
        if name.startswith("worker-"):
            return self.workers().get(name)
        again = self.restarted.get(name)
        if again is not None:
            return again.pid if again.running else None
        record = self._record(name)
        if record is None:
            raise FaultError(
                f"no component {name!r} in this cluster; see `homeport dev status` for names"
            )
        return record.pid if is_alive(record) else None

    def _signal(self, name: str, pid: int, sig: signal.Signals) -> None:
        if name.startswith("worker-"):
            _kill(pid, sig)  # it shares its agent's group: this process only
        else:
            signal_group(pid, sig)

    def kill(self, name: str) -> bool:
        pid = self._pid(name)
        if pid is None:
            return False
        if not name.startswith("worker-"):
            proc = Path(f"/proc/{pid}")
            record = self._record(name)
            # The launcher's own command line first: redis-server rewrites its
            # /proc cmdline into a title ("redis-server 127.0.0.1:6379").
            argv = list(record.argv) if record is not None and record.argv else [
                a.decode() for a in (proc / "cmdline").read_bytes().rstrip(b"\0").split(b"\0")
            ]  # fmt: skip
            self.killed[name] = _Restartable(
                argv,
                os.readlink(proc / "cwd"),
                record.log if record else "/dev/null",
                record.region if record else "",
            )
        self._signal(name, pid, signal.SIGCONT)
        self._signal(name, pid, signal.SIGKILL)
        self.paused.pop(name, None)
        _wait_gone(pid, self.restarted.get(name))
        return True

    def restart(self, name: str) -> bool:
        if name.startswith("worker-"):
            return self._restarted_by_agent(name)
        saved = self.killed.pop(name, None)
        if saved is None:
            return False
        self.restarted[name] = Child.start(name, saved.argv, Path(saved.log), cwd=Path(saved.cwd))
        return True

    def _restarted_by_agent(self, name: str) -> bool:
        """True once the agent runs `name` again (bounded wait)."""
        deadline = time.monotonic() + AGENT_RESTART_S
        while time.monotonic() < deadline:
            if name in self.workers():
                return True
            time.sleep(0.1)  # polling /proc for the agent's restart, bounded by the deadline
        return False

    def pause(self, name: str) -> bool:
        pid = self._pid(name)
        if pid is None:
            return False
        self._signal(name, pid, signal.SIGSTOP)
        self.paused[name] = pid
        return True

    def resume(self, name: str) -> bool:
        pid = self.paused.pop(name, None)
        if pid is None:
            return False
        self._signal(name, pid, signal.SIGCONT)
        return True

    def lose_region(self, region: str) -> list[str]:
        """SIGKILL every process `region` hosts: its servers, the mirrors it holds, its
        gateway and its agent (whose group holds the workers it runs)."""
        names = [r.name for r in self.cluster.records() if r.region == region]
        killed = [name for name in names if self.kill(name)]
        self.lost_infra[region] = killed
        return killed

    def restore_region(self, region: str) -> list[str]:
        names = self.lost_infra.pop(region, [])
        return [name for name in names if self.restart(name)]

    def close(self) -> None:
        for name in list(self.paused):
            self.resume(name)
        stop_all(list(self.restarted.values()))


def _kill(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _wait_gone(pid: int, handle: Child | None) -> None:
    """Bounded wait until `pid` has exited, so a restart never races the old process for
    its port."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if handle is not None:
            if not handle.running:
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

    async def etcd_leader(self) -> str:
        """The region whose etcd member leads the Raft group now."""
        cp = await ControlPlane.open(self.topology, self.topology.regions[0].name)
        try:
            status = await cp.etcd.status()
        finally:
            await cp.close()
        if status.leader is None:
            raise FaultError("etcd reports no leader: the lose_region step cannot pick one")
        return str(status.leader.name)

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
