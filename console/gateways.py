"""The console's gRPC side: one client per region's gateway, and the fan-outs the pages
need (every region's status, a task looked up through any region).

Each call has one attempt and a short deadline: a page should show "eu-west: UNAVAILABLE"
within seconds, not retry for a minute. Gateway errors come back as `GatewayError`, whose
text (code and message) is what the page shows; nothing else is caught here.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from homeport.regions.topology import Topology
from homeport.router.client import AsyncClient, RetryPolicy
from homeport.router.errors import GatewayError
from homeport.router.views import CancelOutcome, DeadLetterView, RegionView, TaskView

from homeport.errors import HomeportError


@dataclass(frozen=True)
class StatusAnswer:
    """One gateway's RegionStatus: the view, or the error text; and how long it took."""

    region: str
    gateway: str
    view: RegionView | None
    error: str
    millis: float


@dataclass(frozen=True)
class Found:
    """A task found through `via`'s gateway, after asking `asked` (in that order)."""

    task: TaskView
    via: str
    asked: tuple[str, ...]


class TaskNowhere(HomeportError):
    """No region's gateway knows the task; `answers` says what each one said."""

    def __init__(self, task_id: str, answers: dict[str, str]) -> None:
        self.answers = answers
        said = "; ".join(f"{r}: {a}" for r, a in answers.items())
        super().__init__(f"task {task_id!r} was not found in any region ({said})")


def describe(exc: GatewayError) -> str:
    return f"{exc.status.name}: {exc.message}"


class Gateways:
    """Clients of every region's gateway, as a client outside the regions dials them."""

    def __init__(
        self, topology: Topology, own_region: str, token: str | None, timeout_s: float
    ) -> None:
        self.topology = topology
        self.own_region = own_region
        self._timeout = timeout_s
        self.addresses = {
            r.name: topology.dial("client", r.name, "gateway", r.gateway)
            for r in topology.regions
            if r.gateway
        }
        self._clients = {
            name: self._client(address, token) for name, address in self.addresses.items()
        }

    def _client(self, address: str, token: str | None) -> AsyncClient:
        return AsyncClient(
            address, token=token, timeout=self._timeout, retry=RetryPolicy(attempts=1)
        )

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()

    def order(self) -> list[str]:
        """Regions to ask, the console's own first."""
        return sorted(self.addresses, key=lambda r: r != self.own_region)

    async def _status(self, region: str) -> StatusAnswer:
        started = time.perf_counter()
        try:
            view = await self._clients[region].region_status()
            error = ""
        except GatewayError as exc:
            view, error = None, describe(exc)
        millis = (time.perf_counter() - started) * 1000
        return StatusAnswer(region, self.addresses[region], view, error, millis)

    async def statuses(self) -> dict[str, StatusAnswer]:
        answers = await asyncio.gather(*(self._status(r) for r in self.order()))
        return {a.region: a for a in answers}

    async def find_task(self, task_id: str) -> Found:
        """Ask every region's gateway in turn, own region first. Any routed gateway finds
        any task (router/finder.py), so the first that answers is enough; the others are
        asked only when it cannot be reached."""
        answers: dict[str, str] = {}
        for region in self.order():
            try:
                task = await self._clients[region].get(task_id)
            except GatewayError as exc:
                answers[region] = describe(exc)
                continue
            return Found(task, region, (*answers, region))
        raise TaskNowhere(task_id, answers)

    async def cancel(self, region: str, task_id: str, partition_key: str) -> CancelOutcome:
        return await self._clients[region].cancel(task_id, partition_key=partition_key)

    async def dead_letters(self, token: str | None) -> tuple[list[DeadLetterView], dict[str, str]]:
        """Every region's dead letters (an admin RPC: sent with `token`), and the error
        text of each region that refused."""
        found: list[DeadLetterView] = []
        errors: dict[str, str] = {}
        for region, address in self.addresses.items():
            client = self._client(address, token)
            try:
                found += await client.dead_letters(limit=1000)
            except GatewayError as exc:
                errors[region] = describe(exc)
            finally:
                await client.close()
        return found, errors

    async def requeue(self, token: str, dead: DeadLetterView) -> str:
        """Requeue one dead letter through the gateway of its home region."""
        home = dead.partition.partition("/")[0]
        client = self._client(self.addresses[home], token)
        try:
            return await client.requeue(dead.task_id, partition_key=dead.partition_key)
        finally:
            await client.close()
