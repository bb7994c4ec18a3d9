"""Optional dependencies: the test lab's commands say which extra to install.

A plain `pip install homeport` is the gateway, worker, agent, local cluster and CLI; game
days, load tests, the planner and the dashboards come with extras (`homeport[chaos]`,
`[loadtest]`, `[plan]`, `[observe]`). A command that needs one checks it before it starts
anything, rather than failing half-way through a run.
"""

from __future__ import annotations

import importlib.util

import click


def require(extra: str, *modules: str) -> None:
    """Raise a usage error naming `extra` when any of `modules` is not installed."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise click.UsageError(
            f"this command needs {', '.join(missing)}: "
            f"install it with `pip install 'homeport[{extra}]'`"
        )
