"""The console's aiohttp application: routes, security headers, and the one place where
errors become pages.

A gateway or control-store error is an answer the operator should read ("eu-west:
UNAVAILABLE: ..."), so it becomes a page with that text. Anything unexpected is logged
with its trace, and the page shows its type and message only: no stack trace ever
reaches the browser.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from homeport.console import actions, pages
from homeport.console.gateways import describe
from homeport.console.settings import ConsoleSettings
from homeport.console.state import KEY, ConsoleState
from homeport.regions.errors import RegionsError
from homeport.router.errors import GatewayError

log = logging.getLogger(__name__)
STATIC = Path(__file__).with_name("static")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Everything the pages load comes from the console itself; nothing from the internet.
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


def _error_page(request: web.Request, status: int, title: str, message: str) -> web.Response:
    st = request.app[KEY]
    return st.render("error.html", request, status=status, title=title, message=message)


@web.middleware
async def errors_as_text(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or request.path.startswith("/static/"):
            raise
        return _error_page(request, exc.status, exc.reason, exc.text or exc.reason)
    except GatewayError as exc:
        return _error_page(request, 502, "Gateway error", describe(exc))
    except RegionsError as exc:
        return _error_page(request, 502, "Control store error", str(exc))
    except Exception as exc:  # noqa: BLE001 - the page shows text; the log has the trace
        log.exception("console page %s failed", request.path)
        return _error_page(request, 500, "Console error", f"{type(exc).__name__}: {exc}")
    if "Content-Security-Policy" not in response.headers:
        response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


# Pages the console did not write (game-day reports) make the browser ask for this.
FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
    '<rect width="16" height="16" rx="3" fill="#0a58ca"/></svg>'
)


async def favicon(request: web.Request) -> web.Response:
    return web.Response(text=FAVICON, content_type="image/svg+xml")


def build_app(settings: ConsoleSettings) -> web.Application:
    app = web.Application(middlewares=[errors_as_text])

    async def lifecycle(app: web.Application):  # type: ignore[no-untyped-def]
        state = await ConsoleState.open(settings)
        app[KEY] = state
        state.sampler.start()
        yield
        await state.close()

    app.cleanup_ctx.append(lifecycle)
    r = app.router
    r.add_get("/", pages.index)
    r.add_get("/favicon.ico", favicon)
    r.add_get("/regions", pages.regions)
    r.add_get("/regions/live", pages.regions_live)
    r.add_get("/queues", pages.queues)
    r.add_get("/queues/live", pages.queues_live)
    r.add_get("/task", pages.task)
    r.add_post("/task/cancel", actions.cancel)
    r.add_get("/dead", pages.dead_letters)
    r.add_post("/dead/requeue", actions.requeue)
    r.add_get("/failovers", pages.failovers)
    r.add_post("/failovers/promote", actions.promote)
    r.add_post("/failovers/failback", actions.failback)
    r.add_get("/jobs/{job:[0-9a-f]+}", pages.job)
    r.add_get("/jobs/{job:[0-9a-f]+}.json", pages.job_json)
    r.add_get("/gamedays", pages.game_days)
    r.add_get("/gamedays/{run}/{name}", pages.game_day_file)
    r.add_static("/static/", STATIC)
    return app
