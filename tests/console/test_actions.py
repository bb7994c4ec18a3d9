"""What the console changes, driven from the page in headless Chromium against a real
cluster: a task found through another region, a dead letter requeued and then run, a
manual promotion and failback, and the refusals of read-only mode and bad tokens."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from homeport.regions.devcluster import DevCluster
from homeport.regions.placement import home_region
from homeport.router.client import AsyncClient
from homeport.router.errors import GatewayError

from homeport.cli import main
from tests.console.conftest import ADMIN_TOKEN, ConsoleProcess, open_routing, until

# Fixtures start a cluster and two console processes: slow on a loaded 2-core machine.
pytestmark = pytest.mark.timeout(300)


@pytest.fixture
async def sdk(console_cluster: DevCluster) -> AsyncIterator[AsyncClient]:
    table = await open_routing(console_cluster)
    client = AsyncClient(table, timeout=5.0)
    yield client
    await client.close()
    await table.close()


def _key_homed_in(cluster: DevCluster, home: str) -> str:
    keys = (f"console-{uuid.uuid4().hex[:8]}" for _ in range(10_000))
    return next(k for k in keys if home_region(k, cluster.topology) == home)


async def _status_of(sdk: AsyncClient, task_id: str) -> str | None:
    """The task's recorded status, or None while no record exists yet. `sdk` must be a
    client of the task's home gateway: records live in the home's database (issue 18)."""
    try:
        return (await sdk.get(task_id)).status
    except GatewayError:
        return None


def _home_client(cluster: DevCluster, home: str) -> AsyncClient:
    region = cluster.topology.region(home)
    address = cluster.topology.dial("client", home, "gateway", region.gateway or "")
    return AsyncClient(address, timeout=5.0)


async def _region_status(cluster: DevCluster) -> dict[str, dict[str, Any]]:
    """`homeport region status --json`, the CLI itself (in a thread: it runs its own loop)."""
    args = ["region", "status", "--json", "--state-dir", str(cluster.state_dir)]
    result = await asyncio.to_thread(CliRunner().invoke, main, args)
    assert result.exit_code == 0, result.output
    return {row["home"]: row for row in json.loads(result.stdout)}


def _route(row: dict[str, Any]) -> tuple[str, int, str]:
    return row["serving"], row["epoch"], row["state"]


async def test_task_submitted_in_one_region_is_found_from_another_regions_console(
    page: Any, admin_console: ConsoleProcess, console_cluster: DevCluster, sdk: AsyncClient
) -> None:
    key = _key_homed_in(console_cluster, "us-east")
    submitted = await sdk.submit("noop", key)
    # Records are written once a worker picks the task up (issue 18): wait for that.
    await until(lambda: _ran(sdk, submitted.task_id), 30, "the task to succeed")
    await page.goto(admin_console.url + "/task")  # the console runs in eu-west
    await page.get_by_label("Task id").fill(submitted.task_id)
    await page.get_by_role("button", name="Look up").click()
    await page.wait_for_selector("#task-status")
    assert await page.locator("#task-status").inner_text() == "SUCCEEDED"
    assert await page.locator("#task-region").inner_text() == "us-east"
    # eu-west's gateway was asked first and found the us-east task itself (issue 18).
    assert await page.locator("#task-via").inner_text() == "eu-west's gateway (asked: eu-west)"
    assert await page.locator("#attempts tbody tr").count() == 1
    assert page.errors == []


async def _ran(sdk: AsyncClient, task_id: str) -> bool:
    return await _status_of(sdk, task_id) == "succeeded"


async def test_dead_letter_requeued_from_the_page_then_runs(
    page: Any, admin_console: ConsoleProcess, console_cluster: DevCluster, sdk: AsyncClient,
    tmp_path: Path,
) -> None:  # fmt: skip
    switch = tmp_path / "failing"
    switch.write_text("the handler fails while this file exists")
    key = _key_homed_in(console_cluster, "ap-south")
    submitted = await sdk.submit("fail_while_file", key, str(switch).encode(), max_attempts=1)
    task_id = submitted.task_id
    home = _home_client(console_cluster, "ap-south")
    await until(lambda: _dead(home, task_id), 30, "the task to be dead-lettered")
    await page.goto(admin_console.url + "/dead?home=ap-south&kind=fail_while_file")
    row = page.locator(f"#dead-table tr[data-task='{task_id}']")
    assert "failing on purpose" in await row.inner_text()
    switch.unlink()  # from now on the handler succeeds
    await row.get_by_role("button", name=f"Requeue {task_id}").click()
    assert task_id in await page.locator("#to-requeue").inner_text()  # the confirmation
    await page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    await page.locator("#do-requeue").click()
    assert await page.locator("#outcome").inner_text() == "requeued 1 of 1 dead letters"

    async def ran_again() -> bool:
        task = await home.get(task_id)
        return any(a.outcome == "succeeded" for a in task.attempts)

    await until(ran_again, 30, "the requeued task to run and succeed")
    await home.close()
    await page.goto(admin_console.url + f"/task?id={task_id}")
    outcomes = await page.locator("#attempts tbody tr td:nth-child(7)").all_inner_texts()
    assert outcomes == ["FAILED", "SUCCEEDED"], outcomes
    assert page.errors == []


async def _dead(sdk: AsyncClient, task_id: str) -> bool:
    return await _status_of(sdk, task_id) == "dead"


async def _run_job(page: Any, form: str, home: str) -> list[str]:
    await page.locator(f"{form} select").select_option(home)
    await page.locator(f"{form} input[name=confirm_home]").fill(home)
    await page.locator(f"{form} input[name=admin_token]").fill(ADMIN_TOKEN)
    await page.locator(f"{form} button[type=submit]").click()
    await page.wait_for_url("**/jobs/*")
    state = page.locator("#job-state")
    await until(lambda: _settled(state), 90, f"the job of {form} to finish")
    outcome = await page.locator("#job-outcome").inner_text()
    assert await state.inner_text() == "done", outcome
    return await page.locator("#job-steps li").all_inner_texts()


async def _settled(state: Any) -> bool:
    return await state.inner_text() != "running"


async def test_manual_promote_from_the_page_shows_on_failovers_and_in_region_status(
    page: Any, admin_console: ConsoleProcess, console_cluster: DevCluster
) -> None:
    home, standby = "ap-south", console_cluster.topology.region("ap-south").standby
    before = (await _region_status(console_cluster))[home]
    await page.goto(admin_console.url + "/failovers")
    steps = await _run_job(page, "#promote-form", home)
    assert steps[0].startswith(f"1. etcd: {home} epoch {before['epoch']} -> {before['epoch'] + 1}")
    assert len(steps) >= 4, steps
    after = (await _region_status(console_cluster))[home]
    assert (after["serving"], after["epoch"]) == (standby, before["epoch"] + 1)
    await page.goto(admin_console.url + "/failovers")
    row = page.locator(f"#history tr[data-home='{home}'][data-kind='promote']").first
    assert await row.get_attribute("data-epoch") == str(after["epoch"])
    assert "manual (console)" in await row.inner_text()

    # Fail back from the page too, so the cluster is left as it was found.
    await _run_job(page, "#failback-form", home)
    back = (await _region_status(console_cluster))[home]
    assert (back["serving"], back["state"]) == (home, "normal")
    await page.goto(admin_console.url + "/failovers")
    assert await page.locator(f"#history tr[data-home='{home}'][data-kind='failback']").count()
    assert page.errors == []


def _csrf(console: ConsoleProcess) -> str:
    html = requests.get(console.url + "/task", timeout=10).text
    return html.split('<meta name="csrf" content="', 1)[1].split('"', 1)[0]


async def test_read_only_console_hides_and_refuses_admin_actions(
    page: Any, readonly_console: ConsoleProcess, console_cluster: DevCluster
) -> None:
    await page.goto(readonly_console.url + "/failovers")
    assert await page.locator("#promote-form").count() == 0
    assert await page.locator("#admin-off").is_visible()
    await page.goto(readonly_console.url + "/dead")
    assert await page.locator("#admin-off").is_visible()
    assert await page.get_by_role("button", name="Requeue").count() == 0
    before = _route((await _region_status(console_cluster))["us-east"])
    refused = requests.post(
        readonly_console.url + "/failovers/promote",
        data={"csrf": _csrf(readonly_console), "home": "us-east", "confirm_home": "us-east",
              "admin_token": ADMIN_TOKEN},
        timeout=30,
    )  # fmt: skip
    assert refused.status_code == 403
    assert "admin actions are off" in refused.text
    cancel = requests.post(
        readonly_console.url + "/task/cancel",
        data={"csrf": _csrf(readonly_console), "region": "us-east", "task_id": "x"},
        timeout=30,
    )
    assert cancel.status_code == 403 and "read-only" in cancel.text
    assert _route((await _region_status(console_cluster))["us-east"]) == before
    assert page.errors == []


async def test_admin_action_with_a_wrong_token_or_confirmation_changes_nothing(
    admin_console: ConsoleProcess, console_cluster: DevCluster
) -> None:
    before = _route((await _region_status(console_cluster))["us-east"])
    form = {"csrf": _csrf(admin_console), "home": "us-east", "confirm_home": "us-east"}
    wrong_token = requests.post(
        admin_console.url + "/failovers/promote", data=form | {"admin_token": "guess"}, timeout=30
    )
    assert wrong_token.status_code == 403 and "wrong admin token" in wrong_token.text
    wrong_name = requests.post(
        admin_console.url + "/failovers/promote",
        data=form | {"admin_token": ADMIN_TOKEN, "confirm_home": "us-eats"},
        timeout=30,
    )
    assert wrong_name.status_code == 400 and "to confirm: nothing was changed" in wrong_name.text
    forged = requests.post(
        admin_console.url + "/failovers/promote",
        data=form | {"admin_token": ADMIN_TOKEN, "csrf": "forged"},
        timeout=30,
    )
    assert forged.status_code == 403
    assert "Traceback" not in wrong_token.text + wrong_name.text + forged.text
    assert _route((await _region_status(console_cluster))["us-east"]) == before
