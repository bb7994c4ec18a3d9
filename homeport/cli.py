"""The `homeport` command line: one click group that mounts each package's commands.

Commands load lazily: `homeport worker` imports the engine only, not the test lab
(Locust, SciPy, Matplotlib), so a worker or gateway starts in a fraction of a second, and
a plain `pip install homeport` (no extras) runs every production command. A command whose
package needs an extra that is not installed says which one.
"""

from __future__ import annotations

import importlib
import signal
from typing import cast

import click

# name -> (module, attribute) of every command or group mounted under `homeport`; each
# package owns its commands in its own `cli.py`, and this table is the only place they meet.
_COMMANDS: dict[str, tuple[str, str]] = {
    "dev": ("homeport.regions.cli", "dev"),
    "worker": ("homeport.core.cli", "worker"),
    "manager": ("homeport.core.cli", "manager"),
    "db": ("homeport.core.cli", "db"),
    "bench": ("homeport.core.cli", "bench"),
    "region": ("homeport.regions.cli", "region"),
    "agent": ("homeport.regions.cli", "agent"),
    "deploy": ("homeport.regions.cli", "deploy"),
    "console": ("homeport.console.cli", "console"),
    "demo": ("homeport.loadtest.demo", "demo"),
    "loadtest": ("homeport.loadtest.cli", "loadtest"),
    "plan": ("homeport.simulation.cli", "plan"),
    "gateway": ("homeport.router.cli", "gateway"),
    "submit": ("homeport.router.cli", "submit"),
    "task": ("homeport.router.cli", "task"),
    "dead": ("homeport.router.cli", "dead"),
    "chaos": ("homeport.chaos.cli", "chaos"),
    "observe": ("homeport.observe.cli", "observe"),
}

# Benchmarks of the layers above the engine join core's `bench` group when it loads:
# `homeport bench gateway`, `homeport bench peers`.
_BENCH_EXTRAS: tuple[tuple[str, str], ...] = (
    ("homeport.router.cli", "gateway_bench"),
    ("homeport.loadtest.cli", "peers_bench"),
)

# The extra each command's package needs beyond a plain install (`pip install homeport`
# is the gateway, worker, agent, local cluster and CLI).
_EXTRA_OF: dict[str, str] = {
    "homeport.chaos.cli": "chaos",
    "homeport.observe.cli": "observe",
    "homeport.loadtest.cli": "loadtest",
    "homeport.simulation.cli": "plan",
}


def load_command(module: str, attr: str) -> click.Command:
    """Import one command; a missing optional dependency becomes a usage error that names
    the extra to install."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        extra = _EXTRA_OF.get(module)
        if extra is None or missing == "homeport":
            raise
        raise click.UsageError(
            f"this command needs the optional dependency {missing!r}: "
            f"install it with `pip install 'homeport[{extra}]'`"
        ) from exc
    return cast(click.Command, getattr(mod, attr))


class LazyGroup(click.Group):
    """A group whose subcommands are imported only when they are run or listed."""

    def __init__(self, *args: object, lazy: dict[str, tuple[str, str]], **kwargs: object):
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._lazy})

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """`--help` lists every command, naming the extra of those not installed."""
        rows = []
        for name in self.list_commands(ctx):
            try:
                command = self.get_command(ctx, name)
            except click.UsageError as exc:
                rows.append((name, f"(not installed: {exc.message.rsplit(': ', 1)[-1]})"))
                continue
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(formatter.width - 20)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands or cmd_name not in self._lazy:
            return super().get_command(ctx, cmd_name)
        command = load_command(*self._lazy[cmd_name])
        if cmd_name == "bench":
            group = cast(click.Group, command)
            for module, attr in _BENCH_EXTRAS:
                try:
                    group.add_command(load_command(module, attr))
                except (click.UsageError, ModuleNotFoundError):
                    continue  # without its extra; the command then does not exist
        self.add_command(command, cmd_name)
        return command


@click.group(
    cls=LazyGroup,
    lazy=_COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
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
