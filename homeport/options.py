"""Click options that commands of several packages share, so that each one is spelled,
checked and explained alike wherever it appears (the package-specific ones live beside
their concept: `core.security.insecure_option`, `core.processes.processes_option`,
`regions.topology.topology_file_option`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click


def out_dir_option(
    help_text: str, default: Path | None = None, *, required: bool = False
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The `--out DIR` option of a command that writes its files into a directory (passed
    as `out`); a path to an existing file is refused."""
    return click.option(
        "--out",
        type=click.Path(file_okay=False, path_type=Path),
        default=default,
        required=required,
        show_default=default is not None,
        help=help_text,
    )
