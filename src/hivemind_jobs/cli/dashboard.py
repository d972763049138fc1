"""``hivemind dashboard``: serve the web dashboard of an application's HiveMind (or of one storage).

It binds to 127.0.0.1 unless told otherwise: a dashboard can requeue, cancel and delete jobs, and
the standalone server has no login of its own. Binding to another address prints a warning (put it
behind an authenticating proxy, or serve it read-only).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import click

import hivemind_jobs as hm
from hivemind_jobs.cli.db import DbCommandError, _reported
from hivemind_jobs.cli.jobs import Source, _check_exists, _environment, _source_options
from hivemind_jobs.cli.worker import load_app
from hivemind_jobs.hive import dashboard_factory
from hivemind_jobs.storage import redact_url

__all__ = ["dashboard"]

_LOCAL = ("127.0.0.1", "localhost", "::1")


def _hive(source: Source, app: str | None) -> hm.HiveMind:
    """The hive to show: APP's (every environment) or one of the storage at --url."""
    if app is not None and source.app_path is not None:
        raise DbCommandError("give the application either as APP or as --app, not both")
    path = app or source.app_path
    if path is None:
        environment = _environment(source)
        _check_exists(environment)
        return hm.HiveMind(environment.info.url, environment=environment.name, table_prefix=source.prefix)
    if source.url is not None or source.prefix is not None:
        raise DbCommandError("--url and --prefix name a storage; with an application its environments are shown")
    loaded = load_app(path)
    hive: hm.HiveMind = loaded if isinstance(loaded, hm.HiveMind) else loaded.hive
    if source.environment is not None:
        hive.env(source.environment)  # an unknown name is an error here, not on the first page
    for environment in hive.environments.values():
        _check_exists(environment)
    return hive


@click.command(short_help="Serve the web dashboard (jobs, recurring jobs, colonies, queues).")
@click.argument("app", metavar="[APP]", required=False)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.option("--read-only", is_flag=True, help="Show jobs but offer no action (every POST is refused).")
@click.option("--title", default="HiveMind", show_default=True, help="Name shown in the page header.")
@_source_options
def dashboard(source: Source, app: str | None, host: str, port: int, read_only: bool, title: str) -> None:
    """Serve the dashboard of APP (module:attribute naming a HiveMind, a Colony or a function
    returning one; every environment of it) or of the storage at --url, until Ctrl-C.

    Pages: overview, jobs (filters, bulk actions), a job, recurring jobs, colonies, queues, and
    /metrics when the prometheus extra is installed.
    """
    try:
        import uvicorn

        create = dashboard_factory()
    except (ImportError, hm.ConfigurationError):
        raise DbCommandError(
            "the dashboard needs the dashboard extra: pip install 'hivemind-jobs[dashboard]'"
        ) from None
    with _reported(source.url):
        hive = _hive(source, app)
    if host not in _LOCAL and not read_only:
        click.echo(
            f"warning: the dashboard on {host}:{port} has no login: anyone who reaches it can requeue, cancel and "
            "delete jobs; serve it behind an authenticating proxy, mount it in your app with authorize=..., or "
            "use --read-only",
            err=True,
        )
    asgi = create(hive, read_only=read_only, title=title)
    where = ", ".join(f"{name} ({redact_url(env.info.url)})" for name, env in hive.environments.items())
    click.echo(f"HiveMind dashboard on http://{_shown(host)}:{port}/ for {where}; Ctrl-C stops it")

    async def serve() -> None:
        async with hive:
            config = uvicorn.Config(asgi, host=host, port=port, log_level="warning", lifespan="off")
            await uvicorn.Server(config).serve()

    with _reported(source.url), contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how it stops
        asyncio.run(serve())


def _shown(host: str) -> Any:
    return f"[{host}]" if ":" in host else host
