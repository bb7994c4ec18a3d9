"""A worker refuses to start without a record store unless `--no-records` says so
(issue 18, point 3): a worker that silently drops every record is refused at start."""

from __future__ import annotations

import os
import subprocess
import sys

from homeport.core.security import FILE_ENV

from tests.conftest import insecure_flag, redis_for


def _worker(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "homeport", "worker", "--app", "tests.router.apps:app",
            "--region", "norec", "--partitions", "2", "--admin-port", "-1", "--burst",
            *insecure_flag(), *args]  # fmt: skip
    # No HOMEPORT_* setting from the caller but the session's credentials.
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    env |= {FILE_ENV: os.environ[FILE_ENV]} if FILE_ENV in os.environ else {}
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)


def test_a_worker_without_a_record_store_refuses_to_start(redis_url: str) -> None:
    client = redis_for(redis_url)
    try:
        before = client.dbsize()
        refused = _worker("--redis-url", redis_url)
        assert refused.returncode == 2, refused.stderr
        assert "no record store" in refused.stderr and "--no-records" in refused.stderr
        assert client.dbsize() == before, "a refused worker wrote nothing"
    finally:
        client.close()


def test_no_records_starts_the_worker_on_purpose(redis_url: str) -> None:
    ran = _worker("--redis-url", redis_url, "--no-records")
    assert ran.returncode == 0, ran.stderr
    assert "worker " in ran.stderr and "region=norec" in ran.stderr
