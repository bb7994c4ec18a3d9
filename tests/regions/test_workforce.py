"""`Workforce`'s standby boots: a parked group wanted after start-up waits
`standby_delay_s` (regions.workforce), so a failover's drain is not slowed by the boot of
re-protection's standbys. The processes are real; a stand-in command keeps the test off
Redis (what a parked worker does is tested in tests/regions/test_multiregion.py)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from homeport.regions.workforce import Wanted, Workforce

# Sleeps until stopped; the workforce appends `--worker-id ID`, which it ignores.
ARGV = [sys.executable, "-c", "import time; time.sleep(120)"]


def _parked(home: str) -> Wanted:
    return Wanted([*ARGV, home], f"redis://127.0.0.1:1/{home}", 4, parked=True)


def _pass(wf: Workforce, wanted: dict[str, Wanted]) -> None:
    wf.converge(wanted, fenced=False, routes_fresh=True)


def test_a_standby_group_wanted_after_start_up_boots_only_after_the_delay(
    tmp_path: Path,
) -> None:
    wf = Workforce("eu-west", tmp_path, 1, standby_delay_s=1.0)
    try:
        # Start-up: the topology's standbys boot at once.
        _pass(wf, {"us-east": _parked("us-east")})
        assert len(wf.groups["us-east"].procs) == 1
        time.sleep(1.1)
        # A re-protection after a failover: ap-south's standby waits, a home promoted
        # here (serving, not parked) starts at once.
        serving = Wanted([*ARGV, "x"], "redis://127.0.0.1:1/x", 4)
        wanted = {"us-east": _parked("us-east"), "ap-south": _parked("ap-south"), "x": serving}
        _pass(wf, wanted)
        first = time.monotonic()
        assert "ap-south" not in wf.groups and len(wf.groups["x"].procs) == 1
        while "ap-south" not in wf.groups:
            assert time.monotonic() - first < 5, "the standby never booted"
            time.sleep(0.05)
            _pass(wf, wanted)
        waited = time.monotonic() - first
        assert 0.9 <= waited < 3.0, waited  # a loose top: shared, busy machines
        assert all(p.poll() is None for p in wf.groups["ap-south"].procs)

        # A wait that ended unstarted (the home is no longer wanted) starts over.
        _pass(wf, {**wanted, "eu-south": _parked("eu-south")})
        _pass(wf, wanted)
        time.sleep(1.1)
        _pass(wf, {**wanted, "eu-south": _parked("eu-south")})
        assert "eu-south" not in wf.groups
    finally:
        for group in wf.groups.values():
            Workforce._kill(group)


def test_no_delay_boots_every_standby_at_once(tmp_path: Path) -> None:
    wf = Workforce("eu-west", tmp_path, 1, standby_delay_s=0.0)
    try:
        _pass(wf, {})
        time.sleep(0.2)
        _pass(wf, {"ap-south": _parked("ap-south")})
        assert len(wf.groups["ap-south"].procs) == 1
    finally:
        for group in wf.groups.values():
            Workforce._kill(group)
