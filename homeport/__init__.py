"""homeport's public face: `App`, `Client`, `AsyncClient` and the `homeport` CLI.

Nothing here holds logic; it re-exports and wires the packages that do.
"""

from homeport.core.app import App as App
from homeport.core.app import TaskContext as TaskContext
from homeport.router.client import AsyncClient as AsyncClient
from homeport.router.client import Client as Client

__all__ = ["App", "AsyncClient", "Client", "TaskContext"]
