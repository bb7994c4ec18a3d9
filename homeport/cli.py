"""The `homeport` command line: one click group that mounts each package's commands."""

from __future__ import annotations

import importlib
import signal
from typing import cast

import click

# (module, attribute) of every command or group mounted under `homeport`; each package
# owns its commands in its own `cli.py`, and this list is the only place they meet.
_COMMANDS: tuple[tuple[str, str], ...] = (
    ("homeport.regions.cli", "dev"),
    ("homeport.core.cli", "worker"),
    ("homeport.core.cli", "manager"),
    ("homeport.core.cli", "db"),
    ("homeport.core.cli", "bench"),
    ("homeport.regions.cli", "region"),
    ("homeport.regions.cli", "agent"),
    ("homeport.loadtest.demo", "demo"),
    ("homeport.loadtest.cli", "loadtest"),
    ("homeport.simulation.cli", "plan"),
    ("homeport.router.cli", "gateway"),
    ("homeport.router.cli", "submit"),
    ("homeport.router.cli", "task"),
    ("homeport.router.cli", "dead"),
    ("homeport.chaos.cli", "chaos"),
    ("homeport.observe.cli", "observe"),
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="homeport")
def main() -> None:
    """homeport: a fault-tolerant, multi-region task scheduler.

    Start a local three-region cluster with `homeport dev up`, see it with
    `homeport dev status`, and stop it with `homeport dev down`.
    """
    # Servers that shut down gracefully on SIGTERM install their own handler over this.
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        sigterm_interrupts()


def sigterm_interrupts() -> None:
    """Make SIGTERM end the process like Ctrl-C (KeyboardInterrupt), so `finally` blocks
    and fixtures stop what it started (a game day's cluster, a load test's gateway and
    workers, a test session's clusters) instead of leaving it running."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


for _module, _attr in _COMMANDS:
    main.add_command(getattr(importlib.import_module(_module), _attr))

# Benchmarks of the layers above the engine join core's `bench` group here, the one place
# allowed to import every package: `homeport bench gateway`, `homeport bench peers`.
_bench = cast(click.Group, main.commands["bench"])
for _module, _attr in (
    ("homeport.router.cli", "gateway_bench"),
    ("homeport.loadtest.cli", "peers_bench"),
):
    _bench.add_command(getattr(importlib.import_module(_module), _attr))
