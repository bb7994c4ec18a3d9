"""`AdminServer`: the small HTTP server every homeport process runs (aiohttp).

GET /metrics     Prometheus text format of the process's registry
GET /healthz     200 while the process's loops are alive, else 503
GET /readyz      200 once the process can do its job (e.g. connected), else 503
GET /v1/status   JSON: what the process is and holds (role-specific)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from homeport.core import targets
from homeport.core.metrics import Metrics
from homeport.core.security import INSECURE_BANNER, Identity
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest


class AdminServer:
    """Serves the admin endpoints; `port` is the bound port after `start()`."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        status: Callable[[], dict[str, Any]],
        healthy: Callable[[], bool],
        ready: Callable[[], bool],
        host: str = "127.0.0.1",
        port: int = 0,
        targets_dir: str = "",
        job: str = "",
        labels: dict[str, str] | None = None,
    ) -> None:
        """`targets_dir`: where to announce this /metrics endpoint for Prometheus'
        file-based discovery (`core.targets`), as job `job` with target `labels`; empty =
        do not announce."""
        self._metrics = metrics
        self._status = status
        self._healthy = healthy
        self._ready = ready
        self._host = host
        self._want_port = port
        self._runner: web.AppRunner | None = None
        self._targets_dir = targets_dir
        self._job = job
        self._labels = labels or {}
        self._target: Path | None = None
        self.port = 0

    async def start(self) -> int:
        app = web.Application()
        app.router.add_get("/metrics", self._get_metrics)
        app.router.add_get("/healthz", self._probe(self._healthy))
        app.router.add_get("/readyz", self._probe(self._ready, Identity.from_env().insecure))
        app.router.add_get("/v1/status", self._get_status)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._want_port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self._want_port
        if self._targets_dir:
            self._target = targets.announce(
                self._targets_dir,
                self._job or "homeport",
                f"{self._host}:{self.port}",
                self._labels,
            )
        return self.port

    async def stop(self) -> None:
        targets.withdraw(self._target)
        self._target = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _get_metrics(self, _: web.Request) -> web.Response:
        body = generate_latest(self._metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    def _probe(
        self, check: Callable[[], bool], insecure: bool = False
    ) -> Callable[[web.Request], Any]:
        # A process without credentials says so wherever it reports ready (core.security).
        note = INSECURE_BANNER + "\n" if insecure else ""

        async def handle(_: web.Request) -> web.Response:
            ok = check()
            text = ("ok\n" if ok else "not ok\n") + note
            return web.Response(status=200 if ok else 503, text=text)

        return handle

    async def _get_status(self, _: web.Request) -> web.Response:
        return web.Response(
            text=json.dumps(self._status(), default=str), content_type="application/json"
        )
