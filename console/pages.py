"""Read-only pages. Each handler gathers what its page shows and renders one template;
a `/live` twin renders only the part that refreshes, for the page's script to swap in."""

from __future__ import annotations

import time

from aiohttp import web
from homeport.console import gamedays
from homeport.console.gateways import TaskNowhere
from homeport.console.overview import home_rows, queue_homes
from homeport.console.state import KEY
from homeport.router.views import DeadLetterView


async def index(request: web.Request) -> web.Response:
    raise web.HTTPFound("/regions")


async def _regions(request: web.Request, template: str) -> web.Response:
    st = request.app[KEY]
    answers = await st.sampler.fresh()
    routes = await st.control.routes()
    health = await st.control.health()
    rows = home_rows(st.topology, routes, answers, health)
    return st.render(template, request, rows=rows, answers=answers, now=time.time())


async def regions(request: web.Request) -> web.Response:
    return await _regions(request, "regions.html")


async def regions_live(request: web.Request) -> web.Response:
    return await _regions(request, "_regions.html")


async def _queues(request: web.Request, template: str) -> web.Response:
    st = request.app[KEY]
    answers = await st.sampler.fresh()
    homes = queue_homes(st.topology, answers, st.sampler)
    errors = {r: a.error for r, a in answers.items() if a.error}
    return st.render(template, request, homes=homes, errors=errors)


async def queues(request: web.Request) -> web.Response:
    return await _queues(request, "queues.html")


async def queues_live(request: web.Request) -> web.Response:
    return await _queues(request, "_queues.html")


async def task(request: web.Request) -> web.Response:
    st = request.app[KEY]
    task_id = request.query.get("id", "").strip()
    found, missing = None, None
    if task_id:
        try:
            found = await st.gateways.find_task(task_id)
        except TaskNowhere as exc:
            missing = exc
    return st.render("task.html", request, task_id=task_id, found=found, missing=missing)


def matching(dead: list[DeadLetterView], home: str, kind: str, error: str) -> list[DeadLetterView]:
    """The dead letters the filters select: home region exactly, kind exactly, error text
    as a case-insensitive substring. Empty filters select everything."""
    return [
        d
        for d in dead
        if (not home or d.partition.partition("/")[0] == home)
        and (not kind or d.kind == kind)
        and (not error or error.lower() in d.error.lower())
    ]


async def dead_letters(request: web.Request) -> web.Response:
    st = request.app[KEY]
    home = request.query.get("home", "")
    kind = request.query.get("kind", "")
    error = request.query.get("error", "")
    dead, errors = await st.gateways.dead_letters(st.settings.admin_token or st.settings.token)
    shown = matching(dead, home, kind, error)
    kinds = sorted({d.kind for d in dead})
    return st.render(
        "dead.html", request, dead=shown, total=len(dead), errors=errors, kinds=kinds,
        home=home, kind=kind, error=error,
    )  # fmt: skip


async def failovers(request: web.Request) -> web.Response:
    st = request.app[KEY]
    events = await st.control.history()
    routes = await st.control.routes()
    return st.render("failovers.html", request, events=events, routes=routes)


async def job(request: web.Request) -> web.Response:
    st = request.app[KEY]
    found = st.jobs.get(request.match_info["job"])
    if found is None:
        raise web.HTTPNotFound(text="no such job (jobs are kept while the console runs)")
    return st.render("job.html", request, job=found)


async def job_json(request: web.Request) -> web.Response:
    st = request.app[KEY]
    found = st.jobs.get(request.match_info["job"])
    if found is None:
        raise web.HTTPNotFound(text="no such job")
    return web.json_response(found.to_json())


async def game_days(request: web.Request) -> web.Response:
    st = request.app[KEY]
    folder = st.settings.reports
    return st.render("gamedays.html", request, reports=gamedays.list_reports(folder), folder=folder)


async def game_day_file(request: web.Request) -> web.StreamResponse:
    st = request.app[KEY]
    path = gamedays.report_file(
        st.settings.reports, request.match_info["run"], request.match_info["name"]
    )
    if path is None:
        raise web.HTTPNotFound(text="no such report file")
    response = web.FileResponse(path)
    # Reports are self-contained pages with inline styles and data: images.
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'"
    )
    return response
