"""homeport's public face: `App`, `Client`, `AsyncClient` and the `homeport` CLI.

Nothing here holds logic; it re-exports and wires the packages that do.
"""

from router.client import AsyncClient as AsyncClient
from router.client import Client as Client
