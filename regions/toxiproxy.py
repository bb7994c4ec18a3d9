"""A thin, typed client of the Toxiproxy HTTP API.

`toxiproxy-python` (0.1.1, 2019) keeps the server address in class attributes, so two
clusters (a developer's and the tests') cannot be driven from one process, and it updates
proxies with the POST form the server has deprecated. This client holds its address per
instance, speaks the current API (PATCH), and raises errors that name the proxy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from homeport.errors import HomeportError


class ToxiproxyError(HomeportError, RuntimeError):
    """The Toxiproxy API refused a request; the message carries its reason."""


@dataclass(frozen=True)
class ProxyInfo:
    name: str
    listen: str
    upstream: str
    enabled: bool
    toxics: list[dict[str, Any]]


class ToxiproxyClient:
    def __init__(self, api: str, timeout: float = 5.0) -> None:
        self.api = api.rstrip("/")
        self.timeout = timeout
        self._http = requests.Session()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        reply = self._http.request(method, self.api + path, json=body, timeout=self.timeout)
        if reply.status_code >= 400:
            raise ToxiproxyError(f"{method} {path}: {reply.status_code} {reply.text.strip()}")
        return reply.json() if reply.content else None

    def version(self) -> str:
        return self._http.get(self.api + "/version", timeout=self.timeout).text.strip()

    def proxies(self) -> dict[str, ProxyInfo]:
        data = self._call("GET", "/proxies")
        return {
            name: ProxyInfo(name, p["listen"], p["upstream"], p["enabled"], p.get("toxics", []))
            for name, p in data.items()
        }

    def set_enabled(self, proxy: str, enabled: bool) -> None:
        """Disabling a proxy closes its connections and refuses new ones (a link down)."""
        self._call("PATCH", f"/proxies/{proxy}", {"enabled": enabled})

    def add_toxic(
        self,
        proxy: str,
        kind: str,
        attributes: dict[str, Any],
        *,
        name: str | None = None,
        stream: str = "downstream",
        toxicity: float = 1.0,
    ) -> str:
        toxic_name = name or f"{kind}_{stream}"
        body = {
            "name": toxic_name,
            "type": kind,
            "stream": stream,
            "toxicity": toxicity,
            "attributes": attributes,
        }
        self._call("POST", f"/proxies/{proxy}/toxics", body)
        return toxic_name

    def remove_toxic(self, proxy: str, toxic: str) -> None:
        self._call("DELETE", f"/proxies/{proxy}/toxics/{toxic}")

    def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        self._call("POST", "/reset")
