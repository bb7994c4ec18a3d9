"""Every page of the console, in headless Chromium against a real cluster: it loads,
logs no console error, passes an axe-core accessibility check, and is photographed
(set HOMEPORT_CONSOLE_SCREENSHOTS=docs/console to refresh the documentation's images)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from homeport.regions.devcluster import DevCluster
from homeport.regions.placement import home_region
from homeport.regions.toxiproxy import ToxiproxyClient
from homeport.router.client import AsyncClient
from homeport.router.errors import GatewayError
from homeport.router.views import NewTask

from homeport.cli import main
from tests.conftest import make_state_dir
from tests.console.conftest import AXE, ConsoleProcess, open_routing, until

# Fixtures start a cluster and two console processes: slow on a loaded 2-core machine.
pytestmark = pytest.mark.timeout(300)

PAGES = [
    ("regions", "/regions", "Regions"),
    ("queues", "/queues", "Queues"),
    ("task", "/task?id={task}", "Task"),
    ("dead-letters", "/dead", "Dead letters"),
    ("failovers", "/failovers", "Failovers"),
    ("game-days", "/gamedays", "Game days"),
]


@pytest.fixture(scope="module")
async def sample_task(console_cluster: DevCluster, state_dir_factory: list[Path]) -> str:
    """Something to show: a burst of tasks, and one that fails for good (its switch file
    stays), so the Task and Dead letters pages have rows. Returns a finished task's id."""
    switch = make_state_dir("console-switch") / "failing"
    state_dir_factory.append(switch.parent)
    switch.write_text("fail")
    table = await open_routing(console_cluster)
    try:
        async with AsyncClient(table, timeout=5.0) as sdk:
            tasks = [NewTask("work", f"acct-{i % 7}") for i in range(200)]
            # The task waited on is homed in us-east: the SDK's `get` asks us-east's
            # gateway, and records live in the home's database (issue 18).
            home_key = next(
                k for k in (f"acct-{i}" for i in range(1000))
                if home_region(k, console_cluster.topology) == "us-east"
            )  # fmt: skip
            tasks.append(NewTask("work", home_key))
            await sdk.submit_many(tasks)
            await sdk.submit("fail_while_file", "acct-dead", str(switch).encode(), max_attempts=2)

            async def done() -> bool:
                try:
                    return (await sdk.get(tasks[-1].id)).status == "succeeded"
                except GatewayError:
                    return False

            await until(done, 60, "the sample tasks to run")
            return tasks[-1].id
    finally:
        await table.close()


def test_console_is_a_homeport_command() -> None:
    result = CliRunner().invoke(main, ["console", "--help"])
    assert result.exit_code == 0, result.output
    assert "--admin-token" in result.output


async def _axe_violations(browser: Any, url: str) -> list[str]:
    """axe-core's violations on `url`, injected from the local npm copy (the page's CSP
    forbids injected scripts, so this context bypasses it; the page itself is the same)."""
    context = await browser.new_context(bypass_csp=True)
    try:
        page = await context.new_page()
        await page.goto(url)
        await page.add_script_tag(path=str(AXE))
        found = await page.evaluate(
            "async () => (await axe.run(document)).violations"
            ".map(v => `${v.id}: ${v.help} (${v.nodes.length}x: ${v.nodes[0].target})`)"
        )
        return list(found)
    finally:
        await context.close()


@pytest.mark.parametrize(("name", "path", "heading"), PAGES, ids=[p[0] for p in PAGES])
async def test_page_loads_without_errors_and_passes_axe(
    page: Any, browser: Any, admin_console: ConsoleProcess, sample_task: str,
    name: str, path: str, heading: str,
) -> None:  # fmt: skip
    path = path.format(task=sample_task)
    response = await page.goto(admin_console.url + path)
    assert response.status == 200
    assert await page.locator("h1").inner_text() == heading
    if path in ("/regions", "/queues"):
        # The live part refreshes itself from the server (the script sets the mark).
        await page.wait_for_selector("[data-live][data-refreshed]", timeout=15_000)
    if path.startswith("/task"):
        assert await page.locator("#task-status").inner_text() == "SUCCEEDED"
    if path == "/queues":
        await page.locator("section.home details").first.click()
    assert page.errors == []
    shots = os.environ.get("HOMEPORT_CONSOLE_SCREENSHOTS")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(Path(shots) / f"{name}.png"), full_page=True)
    if not AXE.exists():
        pytest.skip(f"axe-core not installed at {AXE} (scripts/install.sh installs it)")
    assert await _axe_violations(browser, admin_console.url + path) == []


async def test_regions_page_shows_every_home_served_and_healthy(
    page: Any, admin_console: ConsoleProcess
) -> None:
    await page.goto(admin_console.url + "/regions")
    for home in ("us-east", "eu-west", "ap-south"):
        row = page.locator(f"#regions-table tr[data-home='{home}']")
        assert await row.locator(".serving").inner_text() == home
        text = await row.inner_text()
        assert "available" in text, text  # GLOBAL: every replica online
        assert "alive" in text, text  # the agent reports to etcd


async def test_game_day_report_opens_from_the_list(
    page: Any, admin_console: ConsoleProcess
) -> None:
    await page.goto(admin_console.url + "/gamedays")
    await page.get_by_role("link", name="region-loss-1").click()
    await page.wait_for_load_state()
    assert page.url.endswith("/gamedays/region-loss-1/report.html")
    assert "Verdict: PASS" in await page.content()
    assert page.errors == []
    missing = await page.goto(admin_console.url + "/gamedays/..%2F..%2Fetc/passwd")
    assert missing.status == 404


async def test_unreachable_gateway_is_reported_as_text_not_a_trace(
    page: Any, admin_console: ConsoleProcess, console_cluster: DevCluster
) -> None:
    """Cut the link from clients to ap-south's gateway: the Regions page names the region
    and the gateway's error, and the task lookup still answers from the other regions."""
    api = console_cluster.topology.toxiproxy
    assert api is not None
    tox = ToxiproxyClient(api.api)
    tox.set_enabled("client->ap-south:gateway", False)
    try:
        await page.goto(admin_console.url + "/regions")
        error = page.locator(".error", has_text="ap-south's gateway")
        await error.wait_for(timeout=20_000)
        text = await error.inner_text()
        assert "UNAVAILABLE" in text or "DEADLINE_EXCEEDED" in text, text
        row = page.locator("#regions-table tr[data-home='ap-south']")
        assert "down" in await row.inner_text()
        await page.goto(admin_console.url + "/task?id=no-such-task")
        missing = await page.locator("#task-missing").inner_text()
        assert "ap-south:" in missing and "us-east: NOT_FOUND" in missing, missing
        assert "Traceback" not in await page.content()
    finally:
        tox.set_enabled("client->ap-south:gateway", True)
        tox.close()
