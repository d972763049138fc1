"""The dashboard's ASGI app: routes, security (authorization, CSRF, headers) and rendering.

Pages read through an environment's clients (``env.jobs``, ``env.recurring``, ``env.colonies``,
``env.queues``; a job's continuation links through a read-only storage transaction); every action
is a POST under the object it acts on, checked against the CSRF token of the visitor's cookie.
Read-only dashboards show no action and answer every POST with 403.
"""

from __future__ import annotations

import hmac
import inspect
import secrets
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import urlencode

from jinja2 import Environment as Templates
from jinja2 import FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from hivemind_jobs.dashboard import pages
from hivemind_jobs.errors import ConfigurationError, HiveMindError

if TYPE_CHECKING:
    from hivemind_jobs.environment import Environment

__all__ = ["Authorize", "Runner", "create_dashboard"]

T = TypeVar("T")

#: ``authorize(request) -> bool`` (or awaitable bool): may this request see the dashboard?
Authorize = Callable[[Request], "bool | Awaitable[bool]"]
#: runs a coroutine where the hive's storage lives (the loop of a SyncHiveMind); None: here
Runner = Callable[[Callable[[], Coroutine[Any, Any, Any]]], Awaitable[Any]]


class HiveMind(Protocol):
    """What the dashboard uses of a :class:`~hivemind_jobs.HiveMind`: its environments."""

    default_environment: str

    @property
    def environments(self) -> Mapping[str, Environment]: ...

    def env(self, name: str | None = None) -> Environment: ...


_HERE = Path(__file__).parent
_CSRF_COOKIE = "hivemind_csrf"
_CSRF_FIELD = "csrf_token"
_CSRF_HEADER = "x-csrf-token"
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_SECURITY_HEADERS = {
    "content-security-policy": _CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


def _templates() -> Templates:
    templates = Templates(
        loader=FileSystemLoader(_HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    templates.filters["when"] = pages.when
    templates.filters["age"] = pages.age
    templates.filters["seconds"] = pages.seconds_text
    templates.filters["show"] = pages.show_value
    templates.filters["plural"] = pages.plural
    return templates


class _Dashboard:
    """The state behind the routes: the hive, the options and the templates."""

    def __init__(
        self,
        hive: HiveMind,
        *,
        authorize: Authorize | None,
        read_only: bool,
        title: str,
        runner: Runner | None,
    ) -> None:
        self.hive = hive
        self.authorize = authorize
        self.read_only = read_only
        self.title = title
        self.runner = runner
        self.templates = _templates()
        self.metrics: Any = None

    # ------------------------------------------------------------------ helpers
    async def call(self, factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
        if self.runner is None:
            return await factory()
        result: T = await self.runner(factory)
        return result

    def env(self, request: Request) -> Environment:
        name = request.query_params.get("env") or self.hive.default_environment
        try:
            return self.hive.env(name)
        except (ConfigurationError, KeyError, LookupError):
            raise HTTPException(404, f"no environment {name!r}") from None

    def render(self, request: Request, template: str, context: Mapping[str, Any], status: int = 200) -> HTMLResponse:
        env_name = request.query_params.get("env") or self.hive.default_environment
        base = request.scope.get("root_path", "").rstrip("/")

        def url(path: str, _query: str = "", **params: Any) -> str:
            query = {key: value for key, value in params.items() if value not in (None, "")}
            if env_name != self.hive.default_environment:
                query.setdefault("env", env_name)
            text = "&".join(part for part in (urlencode(query, doseq=True), _query) if part)
            return f"{base}{path}" + (f"?{text}" if text else "")

        page = {
            "request": request,
            "title": self.title,
            "read_only": self.read_only,
            "environments": list(self.hive.environments),
            "environment": env_name,
            "default_environment": self.hive.default_environment,
            "url": url,
            "static": lambda path: f"{base}/static/{path}",
            "csrf_token": request.state.csrf_token,
            "partial": request.headers.get("hx-request") == "true" and request.headers.get("hx-target") == "content",
            "message": request.query_params.get("done", ""),
            "now": datetime.now(UTC),
            **context,
        }
        return HTMLResponse(self.templates.get_template(template).render(page), status_code=status)


# ----------------------------------------------------------------------------- security


def _same_site(request: Request) -> bool:
    """A POST must come from a page of this site (browsers send Sec-Fetch-Site and Origin)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is not None and origin != "null":
        host = request.headers.get("host", "")
        return origin.split("://", 1)[-1] == host
    return True


async def _check_csrf(request: Request) -> None:
    cookie = request.cookies.get(_CSRF_COOKIE, "")
    sent = request.headers.get(_CSRF_HEADER, "")
    if not sent:
        form = await request.form()
        value = form.get(_CSRF_FIELD, "")
        sent = value if isinstance(value, str) else ""
    if not cookie or not sent or not hmac.compare_digest(cookie, sent) or not _same_site(request):
        raise HTTPException(403, "the form is stale or came from another site (CSRF check); reload the page")


class _Guard:
    """ASGI middleware: authorization, the CSRF cookie and token, read-only, security headers."""

    def __init__(self, app: Any, dashboard: _Dashboard) -> None:
        self.app = app
        self.dashboard = dashboard

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        if request.url.path.removeprefix(scope.get("root_path", "")).startswith("/static/"):
            await self.app(scope, receive, send)
            return
        dashboard = self.dashboard
        if dashboard.authorize is not None:
            allowed = dashboard.authorize(request)
            if inspect.isawaitable(allowed):
                allowed = await allowed
            if not allowed:
                await _plain(403, "not authorized to see this dashboard")(scope, receive, send)
                return
        cookie = request.cookies.get(_CSRF_COOKIE)
        token = cookie if cookie and len(cookie) == 43 else secrets.token_urlsafe(32)
        scope.setdefault("state", {})["csrf_token"] = token
        if request.method not in ("GET", "HEAD"):
            if dashboard.read_only:
                await _plain(403, "this dashboard is read-only")(scope, receive, send)
                return
            body = await request.body()
            try:
                await _check_csrf(Request(scope, _replay(body, receive)))
            except HTTPException as error:
                await _plain(error.status_code, str(error.detail))(scope, receive, send)
                return
            receive = _replay(body, receive)
        path = (scope.get("root_path", "") or "") + "/"
        secure = "; Secure" if scope.get("scheme") == "https" else ""

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = [(key, value) for key, value in message.get("headers", []) if key.lower() not in (b"server",)]
                headers.extend((key.encode(), value.encode()) for key, value in _SECURITY_HEADERS.items())
                if token != cookie:
                    headers.append(
                        (
                            b"set-cookie",
                            f"{_CSRF_COOKIE}={token}; Path={path}; HttpOnly; SameSite=Strict{secure}".encode(),
                        )
                    )
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _replay(body: bytes, receive: Any) -> Any:
    """A ``receive`` that hands out ``body`` (already read) once, then waits as ``receive`` does."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Any:
        return pending.pop() if pending else await receive()

    return replayed


def _plain(status: int, text: str) -> Response:
    return PlainTextResponse(text, status_code=status, headers=_SECURITY_HEADERS)


# ----------------------------------------------------------------------------- routes


def _routes(dashboard: _Dashboard) -> list[Any]:
    d = dashboard

    def page(template: str, read: Callable[[Environment], Coroutine[Any, Any, dict[str, Any]]]) -> Any:
        """A page that shows what ``read`` returns for the environment asked for."""

        async def show(request: Request) -> Response:
            env = d.env(request)
            data = await d.call(lambda: read(env))
            return d.render(request, template, data)

        return show

    async def throughput(request: Request) -> Response:
        env = d.env(request)
        span = request.query_params.get("range", "hour")
        if span not in ("hour", "day"):
            raise HTTPException(400, "range is hour or day")
        data = await d.call(lambda: pages.throughput(env, span))
        return JSONResponse(data)

    async def count(request: Request) -> Response:
        env = d.env(request)
        name = request.query_params.get("state", "")
        try:
            number = await d.call(lambda: pages.state_count(env, name))
        except HiveMindError as error:
            raise HTTPException(400, f"state {name!r}: {error}") from None
        return PlainTextResponse(f"{number:,}")

    async def jobs(request: Request) -> Response:
        env = d.env(request)
        data = await d.call(lambda: pages.jobs_page(env, request.query_params))
        return d.render(request, "jobs.html", data, status=400 if data["filters"].errors else 200)

    async def job(request: Request) -> Response:
        env = d.env(request)
        job_id = _job_id(request)
        level = request.query_params.get("level", "")
        data = await d.call(lambda: pages.job_page(env, job_id, level))
        if data is None:
            raise HTTPException(404, f"no job {job_id} in environment {env.name!r}")
        return d.render(request, "job.html", data)

    async def job_action(request: Request) -> Response:
        env = d.env(request)
        job_id = _job_id(request)
        action = request.path_params["action"]
        form = await request.form()
        priority = form.get("priority")
        done = await d.call(lambda: pages.job_action(env, job_id, action, str(priority or "")))
        return _back(request, f"/jobs/{job_id}", done)

    async def bulk(request: Request) -> Response:
        env = d.env(request)
        form = await request.form()
        action = str(form.get("action", ""))
        if form.get("scope") == "matching":
            filters = pages.form_filters(form)
            if filters.errors:
                raise HTTPException(400, "; ".join(filters.errors))
            if form.get("confirm") != "yes":
                count = await d.call(lambda: env.jobs.count(filters.condition))
                return d.render(
                    request, "confirm.html", {"action": action, "count": count, "filters": filters}, status=200
                )
            done = await d.call(lambda: pages.bulk_matching(env, action, filters.condition))
        else:
            ids = [_int_id(value) for value in form.getlist("ids")]
            if not ids:
                raise HTTPException(400, "no job selected; tick some jobs or act on everything matching")
            done = await d.call(lambda: pages.bulk_ids(env, action, ids))
        query = pages.form_filters(form).query()
        return _back(request, "/jobs", done, query)

    async def recurring_job(request: Request) -> Response:
        env = d.env(request)
        recurring_id = request.path_params["recurring_id"]
        data = await d.call(lambda: pages.recurring_job_page(env, recurring_id))
        if data is None:
            raise HTTPException(404, f"no recurring job {recurring_id!r} in environment {env.name!r}")
        return d.render(request, "recurring_job.html", data)

    async def recurring_action(request: Request) -> Response:
        env = d.env(request)
        recurring_id = request.path_params["recurring_id"]
        action = request.path_params["action"]
        done = await d.call(lambda: pages.recurring_action(env, recurring_id, action))
        target = "/recurring" if action == "delete" else f"/recurring/{recurring_id}"
        return _back(request, target, done)

    async def queue_action(request: Request) -> Response:
        env = d.env(request)
        name = request.path_params["queue"]
        action = request.path_params["action"]
        done = await d.call(lambda: pages.queue_action(env, name, action))
        return _back(request, "/queues", done)

    async def metrics(request: Request) -> Response:
        if d.metrics is None:
            raise HTTPException(404, "metrics need the prometheus extra: pip install 'hivemind-jobs[prometheus]'")
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        await d.call(lambda: d.metrics.refresh(d.hive))
        return Response(generate_latest(d.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/", page("overview.html", pages.overview)),
        Route("/throughput", throughput),
        Route("/count", count),
        Route("/jobs", jobs),
        Route("/jobs/bulk", bulk, methods=["POST"]),
        Route("/jobs/{job_id}", job),
        Route("/jobs/{job_id}/{action:str}", job_action, methods=["POST"]),
        Route("/recurring", page("recurring.html", pages.recurring_page)),
        Route("/recurring/{recurring_id}", recurring_job),
        Route("/recurring/{recurring_id}/{action:str}", recurring_action, methods=["POST"]),
        Route("/colonies", page("colonies.html", pages.colonies_page)),
        Route("/queues", page("queues.html", pages.queues_page)),
        Route("/queues/{queue}/{action:str}", queue_action, methods=["POST"]),
        Route("/metrics", metrics),
        Mount("/static", StaticFiles(directory=_HERE / "static"), name="static"),
    ]


def _int_id(text: object) -> int:
    if not isinstance(text, str) or not text.isdigit() or not 0 < int(text) < 2**63:
        raise HTTPException(400, f"a job id is a positive whole number, got {str(text)[:40]!r}")
    return int(text)


def _job_id(request: Request) -> int:
    return _int_id(request.path_params["job_id"])


def _back(request: Request, path: str, done: str, query: str = "") -> Response:
    base = request.scope.get("root_path", "").rstrip("/")
    params = [("done", done)]
    env = request.query_params.get("env")
    if env:
        params.append(("env", env))
    text = urlencode(params) + (f"&{query}" if query else "")
    return RedirectResponse(f"{base}{path}?{text}", status_code=303)


def _error_handler(dashboard: _Dashboard) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handle(request: Request, error: Exception) -> Response:
        if isinstance(error, HTTPException):
            status, message = error.status_code, str(error.detail)
        elif isinstance(error, HiveMindError):
            status, message = 400, str(error)
        else:
            raise error
        if not hasattr(request.state, "csrf_token"):
            request.state.csrf_token = ""
        return dashboard.render(request, "error.html", {"status": status, "error": message}, status=status)

    return handle


def create_dashboard(
    hive: HiveMind,
    *,
    authorize: Authorize | None = None,
    read_only: bool | None = None,
    title: str = "HiveMind",
    runner: Runner | None = None,
) -> Any:
    """The dashboard of ``hive`` as an ASGI app (see :meth:`HiveMind.dashboard`)."""
    if authorize is not None and not callable(authorize):
        raise ConfigurationError(f"authorize must be a function of the request returning a bool, got {authorize!r}")
    if authorize is None and read_only is None:
        raise ConfigurationError(
            "a dashboard can change and delete jobs: pass authorize=(a function of the request that returns whether "
            "it may see the dashboard), or read_only=True for a dashboard that only shows them"
        )
    if not isinstance(title, str) or not title.strip() or len(title) > 100:
        raise ConfigurationError(f"title must be non-empty text of at most 100 characters, got {title!r}")
    dashboard = _Dashboard(hive, authorize=authorize, read_only=bool(read_only), title=title, runner=runner)
    try:
        from prometheus_client import CollectorRegistry

        from hivemind_jobs.prometheus import HiveMetrics
    except ImportError:  # the prometheus extra is not installed: no /metrics
        pass
    else:
        dashboard.metrics = HiveMetrics(CollectorRegistry())
    handler = _error_handler(dashboard)
    app = Starlette(routes=_routes(dashboard), exception_handlers={HTTPException: handler, HiveMindError: handler})
    app.state.dashboard = dashboard
    return _Guard(app, dashboard)
