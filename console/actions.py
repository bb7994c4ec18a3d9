"""Pages that change something. Every form carries the console's CSRF secret; cancel
needs a token (the console is not read-only); requeue, promote and failback need the
admin token typed at the browser, and a confirmation:

- requeue: a first post shows exactly which dead letters would be requeued, and only
  the second post (with the admin token) does it;
- promote and failback: the home's name must be typed again, then the action runs as a
  job whose page shows each step as it happens.
"""

from __future__ import annotations

from aiohttp import web
from homeport.console.gateways import describe
from homeport.console.jobs import Say
from homeport.console.pages import matching
from homeport.console.state import KEY, ConsoleState
from homeport.regions.errors import RegionsError
from homeport.router.errors import GatewayError


async def _form(request: web.Request) -> tuple[ConsoleState, dict[str, str]]:
    st = request.app[KEY]
    form = {k: str(v) for k, v in (await request.post()).items()}
    st.check_csrf(form.get("csrf", ""))
    return st, form


async def cancel(request: web.Request) -> web.Response:
    st, form = await _form(request)
    st.check_write()
    region, task_id = form.get("region", ""), form.get("task_id", "")
    if region not in st.gateways.addresses:
        raise web.HTTPBadRequest(text=f"region {region!r} is not one of this topology's")
    try:
        outcome = await st.gateways.cancel(region, task_id, form.get("partition_key", ""))
        message = (
            f"task {task_id} cancelled"
            if outcome.cancelled
            else f"task {task_id} was not cancelled: it is already {outcome.status}"
        )
    except GatewayError as exc:
        message = f"cancel refused by {region}'s gateway: {describe(exc)}"
    return st.render("done.html", request, title="Cancel", message=message,
                     back=f"/task?id={task_id}")  # fmt: skip


async def requeue(request: web.Request) -> web.Response:
    """Requeue one dead letter (`task_id`) or all that match the filters. Without
    `confirm` it only shows what would be requeued and asks for the admin token."""
    st, form = await _form(request)
    st.check_admin_enabled()
    dead, errors = await st.gateways.dead_letters(st.settings.admin_token)
    task_id = form.get("task_id", "")
    if task_id:
        chosen = [d for d in dead if d.task_id == task_id]
    else:
        chosen = matching(dead, form.get("home", ""), form.get("kind", ""), form.get("error", ""))
    if not form.get("confirm"):
        return st.render("requeue.html", request, chosen=chosen, form=form, errors=errors)
    token = st.check_admin(form.get("admin_token", ""))
    done: list[str] = []
    failed: list[str] = []
    for d in chosen:
        try:
            partition = await st.gateways.requeue(token, d)
            done.append(f"{d.task_id} -> {partition}")
        except GatewayError as exc:
            failed.append(f"{d.task_id}: {describe(exc)}")
    message = f"requeued {len(done)} of {len(chosen)} dead letters"
    return st.render("done.html", request, title="Requeue", message=message, lines=done,
                     failures=failed, back="/dead")  # fmt: skip


def _confirmed(st: ConsoleState, form: dict[str, str]) -> str:
    st.check_admin(form.get("admin_token", ""))
    home = form.get("home", "")
    if home not in st.topology.region_names():
        raise web.HTTPBadRequest(text=f"home {home!r} is not a region of this topology")
    if form.get("confirm_home", "").strip() != home:
        raise web.HTTPBadRequest(
            text=f"type the home's name ({home}) to confirm: nothing was changed"
        )
    return home


async def promote(request: web.Request) -> web.Response:
    return await _job(request, "promote")


async def failback(request: web.Request) -> web.Response:
    return await _job(request, "failback")


async def _job(request: web.Request, action: str) -> web.Response:
    """Start `action` (promote or failback) of the confirmed home; the job page follows."""
    st, form = await _form(request)
    home = _confirmed(st, form)

    async def work(say: Say) -> str:
        if action == "promote":
            moved = await st.control.promote(home, say)
            return (
                f"promoted {home} to {moved.to} at epoch {moved.new_epoch} in {moved.seconds:.2f} s"
            )
        back = await st.control.failback(home, say)
        return (
            f"{home} served by itself again at epoch {back.epoch}; "
            f"{len(back.orphans)} orphans recovered"
        )

    job = st.jobs.start(f"{action} {home}", work, (RegionsError,))
    raise web.HTTPSeeOther(f"/jobs/{job.id}")
