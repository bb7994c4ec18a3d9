"""homeport's public face: `App`, `Client`, `AsyncClient` and the `homeport` CLI.

Nothing here holds logic; it re-exports and wires the packages that do.
"""

from core.app import App as App
from core.app import TaskContext as TaskContext
from router.client import AsyncClient as AsyncClient
from router.client import Client as Client

__all__ = ["App", "AsyncClient", "Client", "TaskContext"]
