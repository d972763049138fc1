"""``hivemind worker`` and ``hivemind colonies``: run a colony from the command line, list colonies.

The application is given uvicorn-style as ``module:attribute``; the attribute is a
:class:`~hivemind_jobs.HiveMind`, a :class:`~hivemind_jobs.Colony` (run as configured) or a
callable returning either.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import click

import hivemind_jobs as hm
from hivemind_jobs.core.text import redact_secrets

__all__ = ["load_app", "parse_swarm", "run_worker"]


def load_app(path: str) -> Any:
    """Import ``module:attribute`` (the current directory is importable, like uvicorn)."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise click.BadParameter(f"expected module:attribute, got {path!r}", param_hint="APP")
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise click.BadParameter(
            f"cannot import {module_name!r}: {redact_secrets(str(error))}", param_hint="APP"
        ) from error
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise click.BadParameter(f"{module_name} has no attribute {attribute!r}", param_hint="APP") from None
    if callable(target) and not isinstance(target, hm.HiveMind | hm.Colony):
        target = target()
    if not isinstance(target, hm.HiveMind | hm.Colony):
        raise click.BadParameter(
            f"{path} is a {type(target).__name__}; expected a HiveMind, a Colony or a function returning one",
            param_hint="APP",
        )
    return target


def parse_swarm(spec: str) -> tuple[list[str], int, list[str | tuple[str, int]]]:
    """``name[/sub...]:drones[:queue,queue=priority,...]`` -> (path, drones, queues)."""
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise click.BadParameter(
            f"{spec!r}: use name:drones[:queue1,queue2=priority] (sub-swarms: parent/child:drones:queues)",
            param_hint="--swarm",
        )
    try:
        drones = int(parts[1])
    except ValueError:
        raise click.BadParameter(f"{spec!r}: drones must be a number, got {parts[1]!r}", param_hint="--swarm") from None
    queues: list[str | tuple[str, int]] = []
    for item in parts[2].split(",") if len(parts) == 3 and parts[2] else []:
        name, _, priority = item.partition("=")
        if priority:
            try:
                queues.append((name, int(priority)))
            except ValueError:
                raise click.BadParameter(f"{item!r}: queue priority must be a number", param_hint="--swarm") from None
        else:
            queues.append(name)
    return parts[0].split("/"), drones, queues


def _build_colony(app: Any, options: dict[str, Any]) -> hm.Colony:
    if isinstance(app, hm.Colony):
        if options["swarms"]:
            raise click.UsageError("the app is a configured Colony; --swarm cannot change it")
        return app
    hive: hm.HiveMind = app
    allow_modules = list(options["allow"]) or [options["app_path"].partition(":")[0].split(".")[0]]
    allow = hm.AllowList(modules=allow_modules, allow_all=options["allow_all"])
    monitor = options["monitor_interval"]
    colony_options = hm.ColonyOptions(
        poll_interval=timedelta(seconds=options["poll_interval"]),
        graceful_stop=timedelta(seconds=options["graceful_stop"]),
        lock_monitor_interval=timedelta(seconds=monitor) if monitor else None,
    )
    colony = hive.colony(name=options["name"], environment=options["environment"], options=colony_options, allow=allow)
    specs = options["swarms"] or [f"main:{options['drones']}"]
    built: dict[str, hm.Swarm] = {}
    for spec in specs:
        path, drones, queues = parse_swarm(spec)
        parent_path, name = "/".join(path[:-1]), path[-1]
        if parent_path:
            parent = built.get(parent_path)
            if parent is None:
                raise click.BadParameter(
                    f"{spec!r}: define swarm {parent_path!r} before its sub-swarms", param_hint="--swarm"
                )
            built["/".join(path)] = parent.swarm(name, drones=drones, queues=queues)
        else:
            built[name] = colony.swarm(name, drones=drones, queues=queues)
    return colony


async def run_worker(app: Any, options: dict[str, Any]) -> int:
    colony = _build_colony(app, options)
    async with colony.hive:
        await colony.run(burst=options["burst"], handle_signals=True)
    return colony.processed


@click.command()
@click.argument("app_path", metavar="APP")
@click.option("--env", "environment", default=None, help="Environment to work (default: the app's default one).")
@click.option("--name", default=None, help="Readable colony name (default: host-pid).")
@click.option(
    "--swarm",
    "swarms",
    multiple=True,
    help="name:drones[:queue1,queue2=priority]; repeat for more swarms, parent/child:... for sub-swarms.",
)
@click.option("--drones", default=4, show_default=True, help="Drones of the default swarm when no --swarm is given.")
@click.option(
    "--allow", multiple=True, help="Module (prefix) whose jobs may run; default: the app's top-level package."
)
@click.option("--allow-all", is_flag=True, help="Run any stored job target (only for trusted databases).")
@click.option("--poll-interval", default=1.0, show_default=True, type=float, help="Seconds between idle polls.")
@click.option(
    "--graceful-stop", default=10.0, show_default=True, type=float, help="Seconds jobs get to finish on stop."
)
@click.option("--monitor-interval", default=None, type=float, help="Seconds between lock-monitor runs.")
@click.option("--burst", is_flag=True, help="Process what is due, then exit.")
@click.option("--log-level", default="INFO", show_default=True, help="Python logging level of the worker.")
def worker(app_path: str, **options: Any) -> None:
    """Run a colony for APP (module:attribute holding a HiveMind or Colony)."""
    logging.basicConfig(
        level=options.pop("log_level").upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    options["app_path"] = app_path
    if options["poll_interval"] <= 0 or options["graceful_stop"] < 0:
        raise click.BadParameter("timings must be positive")
    app = load_app(app_path)
    try:
        processed = asyncio.run(run_worker(app, options))
    except hm.HiveMindError as error:
        raise click.ClickException(redact_secrets(str(error))) from error
    click.echo(f"colony stopped after {processed} jobs", err=True)


@click.command()
@click.option("--app", "app_path", default=None, help="module:attribute of the application's HiveMind.")
@click.option("--url", default=None, help="Storage URL instead of --app (e.g. sqlite:///hivemind.db).")
@click.option("--env", "environment", default=None, help="Environment (default: the default one).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def colonies(app_path: str | None, url: str | None, environment: str | None, as_json: bool) -> None:
    """List the colonies of an environment, as they last reported themselves."""
    import json

    from rich.console import Console
    from rich.table import Table

    if (app_path is None) == (url is None):
        raise click.UsageError("give either --app module:attribute or --url")
    if app_path is not None:
        app = load_app(app_path)
        hive = app.hive if isinstance(app, hm.Colony) else app
    else:
        assert url is not None
        try:
            hive = hm.HiveMind(url, environment=environment or "main")
        except (hm.HiveMindError, ValueError) as error:  # ValueError: urllib's own (a port that is no number)
            raise click.ClickException(redact_secrets(str(error))) from error

    async def fetch() -> list[hm.ColonyInfo]:
        async with hive:
            return await hive.env(environment).colonies.list()

    try:
        infos = asyncio.run(fetch())
    except hm.HiveMindError as error:
        raise click.ClickException(redact_secrets(str(error))) from error
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "id": info.id,
                        "name": info.name,
                        "status": info.status,
                        "host": info.host,
                        "pid": info.pid,
                        "heartbeat": info.heartbeat.isoformat(),
                        "last_progress_at": info.last_progress_at.isoformat() if info.last_progress_at else None,
                        "state": info.state,
                    }
                    for info in infos
                ]
            )
        )
        return
    table = Table(title=f"Colonies ({len(infos)})")
    for column in ("name", "id", "status", "swarms", "busy drones", "processed", "heartbeat"):
        table.add_column(column)
    for info in infos:
        busy = sum(int(swarm.get("busy", 0)) for swarm in info.swarms)
        total = sum(len(swarm.get("drones", [])) for swarm in info.swarms)
        table.add_row(
            info.name,
            info.id,
            info.status,
            ", ".join(str(swarm.get("name")) for swarm in info.swarms),
            f"{busy}/{total}",
            str(info.state.get("processed", 0)),
            info.heartbeat.strftime("%Y-%m-%d %H:%M:%S"),
        )
    Console().print(table)
