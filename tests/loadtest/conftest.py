"""A gateway and a worker of us-east (processes) on the session's local cluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from homeport.loadtest.stack import LocalStack


@pytest.fixture
def stack(redis_url: str, pg_dsn: str, tmp_path: Path) -> Iterator[LocalStack]:
    with LocalStack(
        redis_url, pg_dsn, tmp_path / "logs", region="us-east", partitions=16, workers=1
    ) as running:
        yield running
