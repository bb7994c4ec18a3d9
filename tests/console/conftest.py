"""Fixtures of the web console's browser tests: a cluster of their own (they promote and
fail back a home), two real `homeport console` processes on it, and headless Chromium
driven by Playwright.

- `console_cluster`: three regions with gateways, agents and workers, started by the
  same launcher as `homeport dev up`.
- `admin_console`: a console running in eu-west with a token and the admin token.
- `readonly_console`: a console in us-east with no token at all.
- `browser`: Debian's Chromium (`/usr/bin/chromium`, installed by scripts/install.sh);
  Playwright's own browser download is never used.
- `page`: a fresh page whose console errors and uncaught exceptions are collected in
  `page.errors`, so a test can assert there were none.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from homeport.core.supervisor import Child
from homeport.regions.devcluster import ClusterSpec, DevCluster
from homeport.regions.etcd import ControlStoreUnavailable
from homeport.router.etcd_routing import EtcdRoutingTable

from tests.conftest import _start, make_state_dir

CHROMIUM = Path("/usr/bin/chromium")
AXE = Path(__file__).resolve().parents[2] / ".tools/npm/node_modules/axe-core/axe.min.js"
ADMIN_TOKEN = "console-admin-secret"
TOKEN = "console-read-token"
# Flags that keep Chromium from reaching for the internet (refused here, and noisy).
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
START_TIMEOUT_S = 120.0  # a console imports grpc, aiohttp and the engine: slow under load


@dataclass
class ConsoleProcess:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    state_dir: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="package")
def console_cluster(state_dir_factory: list[Path]) -> Iterator[DevCluster]:
    spec = dataclasses.replace(
        ClusterSpec.default(3, partitions=4), services="homeport.loadtest.apps:app"
    )
    started = _start(spec, "console", state_dir_factory)
    cluster = next(started)
    try:
        _wait_for_workers(cluster)
        yield cluster
    finally:
        started.close()  # stops the cluster (the launcher's `finally`)


def _wait_for_workers(cluster: DevCluster, timeout: float = 180.0) -> None:
    """Until every partition of every home has a worker holding its lease (agents start
    their workers after `up` returns; on a loaded machine that takes a while)."""
    from homeport.router.client import Client
    from homeport.router.errors import GatewayError

    deadline = time.monotonic() + timeout
    for region in cluster.topology.regions:
        with Client(region.gateway or "", timeout=5.0) as client:
            while True:
                try:
                    parts = client.region_status().partitions
                    if parts and all(p.worker for p in parts):
                        break
                except GatewayError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{region.name}'s workers not consuming after {timeout}s")
                time.sleep(0.5)


@pytest.fixture(scope="package")
def reports_dir(state_dir_factory: list[Path]) -> Path:
    """A reports folder holding one game-day run, as `homeport chaos run` lays it out."""
    folder = make_state_dir("console-reports")
    state_dir_factory.append(folder)
    run = folder / "region-loss-1"
    run.mkdir()
    (run / "report.md").write_text("# Game day: region-loss (seed 1)\n\n**Verdict: PASS**\n")
    (run / "report.html").write_text(
        "<!doctype html><html lang='en'><meta charset='utf-8'><title>homeport game day</title>"
        "<main><h1>Game day: region-loss</h1><p>Verdict: PASS</p></main></html>"
    )
    return folder


def _launch(
    cluster: DevCluster, region: str, reports: Path, *tokens: str
) -> Iterator[ConsoleProcess]:
    port = _free_port()
    log = cluster.state_dir / f"console-{region}-{port}.log"
    argv = [
        sys.executable, "-m", "homeport.console", "--state-dir", str(cluster.state_dir),
        "--region", region, "--port", str(port), "--reports", str(reports),
        "--refresh-s", "1", *tokens,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMEPORT_")}
    console = Child.start(f"console-{region}", argv, log, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        console.wait_ready(
            lambda: requests.get(f"{url}/regions", timeout=10).status_code == 200,
            START_TIMEOUT_S,
            "serving",
        )
        yield ConsoleProcess(url, console.proc, log, cluster.state_dir)
    finally:
        console.stop(30)


@pytest.fixture(scope="package")
def admin_console(console_cluster: DevCluster, reports_dir: Path) -> Iterator[ConsoleProcess]:
    yield from _launch(
        console_cluster, "eu-west", reports_dir, "--token", TOKEN, "--admin-token", ADMIN_TOKEN
    )


@pytest.fixture(scope="package")
def readonly_console(console_cluster: DevCluster, reports_dir: Path) -> Iterator[ConsoleProcess]:
    yield from _launch(console_cluster, "us-east", reports_dir)


@pytest.fixture(scope="package")
async def browser() -> AsyncIterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install.sh (apt package chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@pytest.fixture
async def page(browser: Any) -> AsyncIterator[Any]:
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    page = await context.new_page()
    page.errors = []
    page.on(
        "console",
        lambda msg: (
            page.errors.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None
        ),
    )
    page.on("pageerror", lambda exc: page.errors.append(f"page error: {exc}"))
    yield page
    await context.close()


async def open_routing(cluster: DevCluster, attempts: int = 5) -> EtcdRoutingTable:
    """The SDK's routing table; etcd's connect has a 2 s budget, which a loaded 2-core
    machine sometimes misses, so a few attempts are allowed before failing."""
    for attempt in range(attempts):
        try:
            return await EtcdRoutingTable.open(cluster.topology)
        except ControlStoreUnavailable:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(1.0)
    raise AssertionError("unreachable")


async def until(predicate: Any, timeout: float, what: str) -> None:
    """Poll `predicate` (async, truthy when done) every 0.2 s for up to `timeout` s."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.2)
