"""The `gameday` marker (registered in pyproject.toml): scenarios too long for CI run only
with HOMEPORT_GAMEDAY=1 (`make gameday`); a plain `pytest` run skips them."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.environ.get("HOMEPORT_GAMEDAY") == "1":
        return
    skip = pytest.mark.skip(reason="game-day scenario: run with `make gameday`")
    for item in items:
        if "gameday" in item.keywords:
            item.add_marker(skip)
