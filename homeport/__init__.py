"""homeport's public face: `App`, `Client`, `AsyncClient` and the `homeport` CLI.

Nothing here holds logic; it re-exports and wires the packages that do. The re-exports
load on first use (PEP 562), so `homeport worker` does not import the gRPC client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from homeport.core.app import App as App
    from homeport.core.app import TaskContext as TaskContext
    from homeport.router.client import AsyncClient as AsyncClient
    from homeport.router.client import Client as Client

__all__ = ["App", "AsyncClient", "Client", "TaskContext"]

_EXPORTS = {
    "App": "homeport.core.app",
    "TaskContext": "homeport.core.app",
    "AsyncClient": "homeport.router.client",
    "Client": "homeport.router.client",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'homeport' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
