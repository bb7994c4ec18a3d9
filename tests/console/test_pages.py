"""Every page of the console, in headless Chromium against a real cluster: it loads,
logs no console error, passes an axe-core accessibility check, and is photographed
(set HOMEPORT_CONSOLE_SCREENSHOTS=docs/console to refresh the documentation's images)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from homeport.cli import main
from tests.console.conftest import AXE, ConsoleProcess

PAGES = [
    ("regions", "/regions", "Regions"),
    ("queues", "/queues", "Queues"),
    ("task", "/task", "Task"),
    ("dead-letters", "/dead", "Dead letters"),
    ("failovers", "/failovers", "Failovers"),
    ("game-days", "/gamedays", "Game days"),
]


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
    page: Any, browser: Any, admin_console: ConsoleProcess, name: str, path: str, heading: str
) -> None:
    response = await page.goto(admin_console.url + path)
    assert response.status == 200
    assert await page.locator("h1").inner_text() == heading
    if path in ("/regions", "/queues"):
        # The live part refreshes itself from the server (the script sets the mark).
        await page.wait_for_selector("[data-live][data-refreshed]", timeout=15_000)
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
