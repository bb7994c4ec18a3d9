"""`Workforce`: the worker processes one region agent runs, one group per served home.

The agent says which homes this region serves and with which command line; the
workforce converges on that:

- a home this region stands by for gets *parked* workers (warm standbys, waiting for the
  mirror to become a primary); a promotion here adopts them without a restart;
- a home no longer served: its workers get SIGTERM (graceful: in-flight handlers finish
  and are acked) in the background, so the agent's loop never waits on them;
- a worker that exits on its own is restarted at once, and its leases are *evicted*: the
  workforce named the worker and reaped the process, so the worker is known dead, and
  the home's live workers take its partitions over at their next step instead of a
  lease TTL later;
- a *fence* (the region lost its etcd lease and may be failed over at any moment)
  freezes every worker at once (SIGSTOP): nothing begins or acks meanwhile. When the
  lease comes back the workers are thawed (SIGCONT) and carry on where they were, so a
  short fence, such as an etcd election that outlasted a keep-alive, costs a healthy
  region only the fence itself. A home that was failed over during the fence is not
  thawed: its workers are killed where they stand (their entries were redelivered to
  the standby), and a fence longer than `fence_kill_s` ends all of them.

A parked group wanted after the workforce's first `standby_delay_s` (a re-protection after
a failover, a failback's new standby) is started only once it has been wanted that long:
a failover's first seconds belong to its drain, and the boot of a standby's processes
(imports, about 0.75 s of CPU each) is a chore that can wait. On a host shared by several
regions (a dev cluster, a game day) the eight boots of a three-region re-protection took
a core from the promoted region's drain (docs/failover-model.md). A promotion during the
wait starts the home's workers at once, as serving ones.

A parked group may also boot *prepared* workers (`Wanted.reserves`, `homeport worker
--reserve`): booted and connected, holding nothing, even after a promotion; a scale-up
starts them (a `go` on their stdin) before it spawns anything, so the added workers
skip the process boot. They freeze, thaw and stop with their group; a dead one is
dropped, never replaced.

The worker table (ids, PIDs, restarts) is published to `<log_dir>/workers-<region>.json`
for `homeport dev status`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from homeport.core.broker import Broker
from homeport.core.errors import HomeportError
from homeport.core.keys import RegionKeys
from homeport.core.security import ROLE_ENV
from homeport.core.worker import SPAWNED_AT_ENV

log = logging.getLogger(__name__)
EVICT_TIMEOUT_S = 2.0


@dataclass
class WorkerGroup:
    """The worker processes run for one served home, and the command they were run with."""

    argv: list[str]
    redis_url: str  # the copy of the home's data the workers consume (for evictions)
    partitions: int
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    restarts: list[int] = field(default_factory=list)
    started: list[float] = field(default_factory=list)
    parked: bool = False
    extra: tuple[str, ...] = ()
    # Prepared workers (`homeport worker --reserve`): booted, idle, holding nothing; a
    # scale-up starts them (a `go` on their stdin) before it spawns any new process.
    reserves: list[subprocess.Popen[bytes]] = field(default_factory=list)
    reserve_ids: list[str] = field(default_factory=list)

    def every_proc(self) -> list[subprocess.Popen[bytes]]:
        return [*self.procs, *self.reserves]


@dataclass(frozen=True)
class Wanted:
    """What the agent wants run for one home."""

    argv: list[str]
    redis_url: str
    partitions: int
    parked: bool = False  # a warm standby: waits for its store to become a primary
    extra: tuple[str, ...] = ()  # launch-only arguments, not part of the group's identity
    # Worker processes to run (None = the workforce's `per_home`); more than the group
    # has starts the difference (a capacity scale-up, `regions.capacity`), fewer stops none.
    count: int | None = None
    # Prepared workers to boot with a new group (`WorkerGroup.reserves`); a group keeps
    # what it started with: no top-up, so a scale-up never boots replacements meanwhile.
    reserves: int = 0


class Workforce:
    def __init__(
        self,
        region: str,
        log_dir: Path,
        per_home: int,
        *,
        fence_kill_s: float = 30.0,
        standby_delay_s: float = 0.0,
        on_restart: Any = None,
    ) -> None:
        self.region = region
        self.log_dir = log_dir
        self.per_home = per_home
        self.fence_kill_s = fence_kill_s
        self.standby_delay_s = standby_delay_s
        self._born = time.monotonic()
        self._standby_wanted: dict[str, float] = {}  # home -> first wanted (monotonic)
        self._on_restart = on_restart or (lambda home: None)
        self.groups: dict[str, WorkerGroup] = {}
        self._spawned = 0
        self._changed = True
        self._frozen_at: float | None = None
        self._background: set[asyncio.Task[None]] = set()

    @property
    def frozen(self) -> bool:
        return self._frozen_at is not None

    # --- converging -----------------------------------------------------------------------

    def converge(self, wanted: dict[str, Wanted], *, fenced: bool, routes_fresh: bool) -> None:
        """One supervisor pass. `routes_fresh`: `wanted` comes from a routing table read
        in this pass (a thaw waits for one, so that a home failed over meanwhile is
        never thawed)."""
        if fenced or (self.frozen and not routes_fresh):
            self._freeze()
            return
        for home in list(self.groups):
            group = self.groups[home]
            want = wanted.get(home)
            if want is not None and group.argv == want.argv and group.parked and not want.parked:
                log.info("agent %s: %s failed over here: its parked workers take over",
                            self.region, home)  # fmt: skip
                group.parked = False
                self._changed = True
            # A group moves from serving to parked (a failback) only by a restart: the
            # copy it consumed is about to become a replica of the home again.
            if want is None or group.argv != want.argv or group.parked != want.parked:
                group = self.groups.pop(home)
                self._changed = True
                if self.frozen:
                    log.warning("agent %s: %s moved while fenced: killing its frozen workers",
                                self.region, home)  # fmt: skip
                    self._kill(group)
                else:
                    log.info("agent %s: stopping workers of %s", self.region, home)
                    self._background_task(self.stop_group(group), f"stop {home}")
        if self.frozen:
            self._thaw()
        for home in list(self._standby_wanted):
            if home not in wanted or not wanted[home].parked:
                del self._standby_wanted[home]  # a wait that ended unstarted starts over
        for home, want in wanted.items():
            found = self.groups.get(home)
            if found is not None:
                self._tend(home, found, want)
            elif not (want.parked and self._standby_waits(home)):
                self._start_group(home, want)

    def _start_group(self, home: str, want: Wanted) -> None:
        log.info("agent %s: starting %s of %s", self.region,
                    "parked workers" if want.parked else "workers", home)  # fmt: skip
        fresh = self.groups[home] = WorkerGroup(
            want.argv, want.redis_url, want.partitions, parked=want.parked, extra=want.extra
        )
        for i in range(want.count or self.per_home):
            self._spawn(home, fresh, i)
        for _ in range(want.reserves):
            self._spawn_reserve(home, fresh)

    def _standby_waits(self, home: str) -> bool:
        """Whether `home`'s parked group, not started yet, waits (see the module
        docstring): only groups first wanted after the workforce's first
        `standby_delay_s`, and until they have been wanted that long."""
        now = time.monotonic()
        first = self._standby_wanted.setdefault(home, now)
        if first - self._born < self.standby_delay_s or now - first >= self.standby_delay_s:
            del self._standby_wanted[home]
            return False
        return True

    def _tend(self, home: str, group: WorkerGroup, want: Wanted) -> None:
        """Restart the group's exited workers; start more if `want` asks for more."""
        for i, proc in enumerate(group.procs):
            if proc.poll() is not None:
                log.warning("agent %s: worker %s of %s exited (%s); restarting",
                            self.region, group.ids[i], home, proc.returncode)  # fmt: skip
                self._on_restart(home)
                self._evict(home, group, group.ids[i])
                self._spawn(home, group, i)
        group.reserves, group.reserve_ids = self._live_reserves(home, group)
        if want.count is not None and want.count > len(group.procs):
            log.info("agent %s: scaling %s up from %d to %d workers (%d prepared)",
                        self.region, home, len(group.procs), want.count,
                        min(len(group.reserves), want.count - len(group.procs)))  # fmt: skip
            for i in range(len(group.procs), want.count):
                if not self._start_reserve(group):
                    self._spawn(home, group, i)

    def _live_reserves(
        self, home: str, group: WorkerGroup
    ) -> tuple[list[subprocess.Popen[bytes]], list[str]]:
        """The group's reserves still running (a dead one is dropped, not replaced)."""
        kept = [(p, i) for p, i in zip(group.reserves, group.reserve_ids, strict=True)
                if p.poll() is None]  # fmt: skip
        if len(kept) < len(group.reserves):
            log.warning("agent %s: %d reserve(s) of %s exited", self.region,
                        len(group.reserves) - len(kept), home)  # fmt: skip
            self._changed = True
        return [p for p, _ in kept], [i for _, i in kept]

    def _start_reserve(self, group: WorkerGroup) -> bool:
        """Turn the group's next reserve into a worker (`go` on its stdin)."""
        while group.reserves:
            proc, worker_id = group.reserves.pop(0), group.reserve_ids.pop(0)
            try:
                if proc.stdin is None or proc.poll() is not None:
                    continue
                proc.stdin.write(b"go\n")
                proc.stdin.close()
            except OSError:  # it died meanwhile (a broken pipe): the next one, or a spawn
                continue
            group.procs.append(proc)
            group.ids.append(worker_id)
            group.restarts.append(0)
            group.started.append(time.time())
            self._changed = True
            return True
        return False

    def _freeze(self) -> None:
        now = time.monotonic()
        if self._frozen_at is None:
            self._frozen_at = now
            log.warning("agent %s: fenced: freezing %d workers", self.region, self._count())
            self._signal_all(signal.SIGSTOP)
        elif now - self._frozen_at > self.fence_kill_s and self.groups:
            log.warning("agent %s: fenced for over %.0fs: ending its workers",
                        self.region, self.fence_kill_s)  # fmt: skip
            for home in list(self.groups):
                self._kill(self.groups.pop(home))
            self._changed = True

    def _thaw(self) -> None:
        held = time.monotonic() - (self._frozen_at or time.monotonic())
        self._frozen_at = None
        log.info("agent %s: lease back after %.1fs: thawing %d workers",
                    self.region, held, self._count())  # fmt: skip
        self._signal_all(signal.SIGCONT)

    def _count(self) -> int:
        return sum(len(g.procs) for g in self.groups.values())

    def _signal_all(self, sig: signal.Signals) -> None:
        for group in self.groups.values():
            for proc in group.every_proc():
                if proc.poll() is None:
                    proc.send_signal(sig)

    @staticmethod
    def _kill(group: WorkerGroup) -> None:
        for proc in group.every_proc():
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    # --- one worker ---------------------------------------------------------------------

    def _spawn(self, home: str, group: WorkerGroup, index: int) -> None:
        """Start worker `index` of `home` under a fresh id, kept so that the worker's
        leases can be evicted the moment its process is reaped."""
        self._spawned += 1
        worker_id = f"{self.region}:{home}:{index}:{os.getpid()}.{self._spawned}"
        with self._log_path(home, index).open("ab") as out:
            proc = subprocess.Popen(
                [*group.argv, *group.extra, "--worker-id", worker_id],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                # its credentials (core.security); its spawn time, for its boot seconds
                env={**os.environ, ROLE_ENV: "worker", SPAWNED_AT_ENV: repr(time.time())},
            )  # fmt: skip
        if index < len(group.procs):
            group.procs[index], group.ids[index] = proc, worker_id
            group.restarts[index] += 1
            group.started[index] = time.time()
        else:
            group.procs.append(proc)
            group.ids.append(worker_id)
            group.restarts.append(0)
            group.started.append(time.time())
        self._changed = True

    def _spawn_reserve(self, home: str, group: WorkerGroup) -> None:
        """Boot a prepared worker (`--reserve`): its stdin is the agent's pipe."""
        self._spawned += 1
        index = len(group.procs) + len(group.reserves)
        worker_id = f"{self.region}:{home}:{index}:{os.getpid()}.{self._spawned}"
        with self._log_path(home, index).open("ab") as out:
            proc = subprocess.Popen(
                [*group.argv, *group.extra, "--reserve", "--worker-id", worker_id],
                stdin=subprocess.PIPE, stdout=out, stderr=out,
                env={**os.environ, ROLE_ENV: "worker", SPAWNED_AT_ENV: repr(time.time())},
            )  # fmt: skip
        group.reserves.append(proc)
        group.reserve_ids.append(worker_id)

    def reserves(self, home: str) -> int:
        """Prepared workers of `home`'s group still running."""
        group = self.groups.get(home)
        return sum(1 for p in group.reserves if p.poll() is None) if group else 0

    def _log_path(self, home: str, index: int) -> Path:
        return self.log_dir / f"worker-{self.region}-{home}-{index}.log"

    def _evict(self, home: str, group: WorkerGroup, worker_id: str) -> None:
        """Release a reaped worker's leases in the background (bounded in time). A
        parked worker holds none (its mirror is a read-only replica)."""
        if group.parked:
            return

        async def evict() -> None:
            broker = Broker(group.redis_url)
            try:
                await asyncio.wait_for(broker.connect(), EVICT_TIMEOUT_S)
                released = await asyncio.wait_for(
                    broker.evict(RegionKeys(home), worker_id, group.partitions), EVICT_TIMEOUT_S
                )
                log.info("agent %s: evicted dead worker %s (%d partition leases)",
                         self.region, worker_id, released)  # fmt: skip
            except (HomeportError, TimeoutError, OSError) as exc:
                log.info("agent %s: could not evict %s (its leases will expire): %s",
                         self.region, worker_id, exc)  # fmt: skip
            finally:
                await broker.close()

        self._background_task(evict(), f"evict {worker_id}")

    def _background_task(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- stopping -----------------------------------------------------------------------

    @staticmethod
    async def stop_group(group: WorkerGroup, grace: float = 10.0) -> None:
        """SIGTERM (and SIGCONT, should they be frozen), then SIGKILL after `grace`."""
        procs = group.every_proc()
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.send_signal(signal.SIGCONT)
        deadline = time.monotonic() + grace
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    async def stop(self) -> None:
        """Stop every worker (the agent is shutting down)."""
        groups = list(self.groups.values())
        self.groups.clear()
        await asyncio.gather(*(self.stop_group(g) for g in groups))
        if self._background:
            await asyncio.wait(list(self._background), timeout=15)

    # --- reporting ----------------------------------------------------------------------

    def rows(self) -> list[dict[str, Any]]:
        return [
            {
                "home": home,
                "id": group.ids[i],
                "pid": p.pid,
                "alive": p.poll() is None,
                "frozen": self.frozen,
                "parked": group.parked,
                "restarts": group.restarts[i],
                "started_at": group.started[i],
                "log": str(self._log_path(home, i)),
            }  # fmt: skip
            for home, group in self.groups.items()
            for i, p in enumerate(group.procs)
        ]

    def publish(self) -> None:
        """Write the worker table to `<log_dir>/workers-<region>.json` if it changed."""
        if not self._changed:
            return
        self._changed = False
        path = self.log_dir / f"workers-{self.region}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.rows(), indent=1))
        tmp.replace(path)
