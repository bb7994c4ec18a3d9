"""`homeport gateway --processes N`: N gateway processes share one port (SO_REUSEPORT)."""

from __future__ import annotations

import re
import signal
import sys
from pathlib import Path

from homeport.core.supervisor import Child

from homeport import Client
from tests.conftest import insecure_flag
from tests.router.conftest import PARTITIONS, REGION

_LISTENING = re.compile(r"listening on (\S+)")


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _listens_on(pid: int, port: int) -> bool:
    """Whether process `pid` holds a TCP socket listening on `port` (Linux /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = fd.readlink().as_posix() if fd.is_symlink() else ""
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            cols = row.split()
            local, state, inode = cols[1], cols[3], cols[9]
            if state == "0A" and int(local.rpartition(":")[2], 16) == port and inode in inodes:
                return True
    return False


def test_two_gateway_processes_listen_on_one_port_and_stop_on_one_sigterm(
    redis_url: str, migrated_pg_dsn: str, tmp_path: Path
) -> None:
    argv = [sys.executable, "-m", "homeport", "gateway", "--region", REGION,
            "--redis-url", redis_url, "--pg-dsn", migrated_pg_dsn, "--partitions",
            str(PARTITIONS), "--listen", "127.0.0.1:0", "--admin-port", "-1", "--token", "t0k3n",
            "--processes", "2", *insecure_flag()]  # fmt: skip
    gateway = Child.start("gateway", argv, tmp_path / "gateway.log")
    log, proc = gateway.log, gateway.proc
    try:
        gateway.wait_ready(lambda: len(_LISTENING.findall(log.read_text())) >= 2, 60,
                           "two processes listening")  # fmt: skip
        addresses = _LISTENING.findall(log.read_text())
        assert addresses[0] == addresses[1], "both processes serve the one port"
        port = int(addresses[0].rpartition(":")[2])
        children = _children(proc.pid)
        listening = [c for c in children if _listens_on(c, port)]
        assert len(listening) == 2, f"listening on {port}: {listening} of {children}"
        with Client(addresses[0], token="t0k3n") as client:
            ids = [client.submit("noop", f"key-{i}", b"x").task_id for i in range(20)]
        assert len(set(ids)) == 20
        proc.send_signal(signal.SIGTERM)  # forwarded to both
        assert proc.wait(timeout=30) == 0, log.read_text()
        assert not any(Path(f"/proc/{c}").exists() for c in children), "children reaped"
    finally:
        gateway.kill()
