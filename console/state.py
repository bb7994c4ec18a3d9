"""`ConsoleState`: what every handler shares (settings, gateway clients, the etcd control
plane, the queue sampler, jobs, templates), built at start-up and closed at shutdown."""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
from aiohttp import web
from homeport.console.charts import sparkline, timeline, when
from homeport.console.control import Control
from homeport.console.gateways import Gateways
from homeport.console.jobs import Jobs
from homeport.console.sampler import QueueSampler
from homeport.console.settings import ConsoleSettings
from homeport.core.metrics import Metrics
from homeport.regions.etcd import ControlStoreUnavailable
from homeport.regions.topology import Topology, load_topology

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).with_name("templates")


@dataclass
class ConsoleState:
    settings: ConsoleSettings
    topology: Topology
    region: str
    gateways: Gateways
    control: Control
    sampler: QueueSampler
    jobs: Jobs = field(default_factory=Jobs)
    # Every form carries this secret, so another site's page cannot post to the console
    # (cross-site request forgery) even though the browser would send the request.
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    templates: jinja2.Environment = field(
        default_factory=lambda: jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
    )

    def __post_init__(self) -> None:
        self.templates.globals.update(spark=sparkline, timeline=timeline, when=when)

    @classmethod
    async def open(cls, settings: ConsoleSettings) -> ConsoleState:
        topology = load_topology(settings.topology)
        region = settings.region or topology.regions[0].name
        topology.region(region)  # a clear error for an unknown --region
        gateways = Gateways(topology, region, settings.read_token, settings.gateway_timeout_s)
        control = await _open_control(topology)
        sampler = QueueSampler(gateways, settings.refresh_s, Metrics())
        return cls(settings, topology, region, gateways, control, sampler)

    async def close(self) -> None:
        await self.sampler.stop()
        await self.jobs.close()
        await self.gateways.close()
        await self.control.close()

    def check_csrf(self, given: str) -> None:
        if not hmac.compare_digest(given.encode(), self.csrf.encode()):
            raise web.HTTPForbidden(text="this form is stale or came from another site: reload")

    def check_write(self) -> None:
        if self.settings.read_only:
            raise web.HTTPForbidden(
                text="the console is read-only: start it with --token (or HOMEPORT_TOKEN)"
            )

    def check_admin_enabled(self) -> str:
        if not self.settings.admin_token:
            raise web.HTTPForbidden(
                text="admin actions are off: start the console with --admin-token "
                "(or HOMEPORT_ADMIN_TOKEN)"
            )
        return self.settings.admin_token

    def check_admin(self, typed: str) -> str:
        """The typed admin token, when it is the console's; refuses otherwise."""
        wanted = self.check_admin_enabled()
        if not hmac.compare_digest(typed.encode(), wanted.encode()):
            raise web.HTTPForbidden(text="wrong admin token: nothing was changed")
        return wanted

    def render(
        self, name: str, request: web.Request, status: int = 200, **ctx: object
    ) -> web.Response:
        page = self.templates.get_template(name).render(
            console=self, settings=self.settings, path=request.path, **ctx
        )
        return web.Response(text=page, content_type="text/html", status=status)


KEY = web.AppKey("console", ConsoleState)


async def _open_control(topology: Topology, attempts: int = 3) -> Control:
    """etcd at start-up, tried `attempts` times a second apart (each try has the control
    plane's 2 s budget): a console started with its cluster should not die of one slow
    answer. Each failure is logged; the last one is raised with etcd's message."""
    for attempt in range(1, attempts + 1):
        try:
            return await Control.open(topology)
        except ControlStoreUnavailable as exc:
            if attempt == attempts:
                raise
            log.warning("etcd not reachable yet (try %d of %d): %s", attempt, attempts, exc)
            await asyncio.sleep(1.0)
    raise AssertionError("unreachable")
